import { test } from "node:test";
import assert from "node:assert/strict";
import {
  PARAMETERS,
  parameterSpec,
  parseModelfile,
  typeParameter,
  typeParameters,
  validateOptions,
} from "../../../grammar/modelfile/index.js";

test("the table holds every current and legacy name of compat.md", () => {
  const current = ["num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "num_keep", "seed", "num_predict", "draft_num_predict", "top_k", "top_p", "min_p", "typical_p", "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty", "stop"];
  const legacy = ["tfs_z", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline", "numa", "num_gqa", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock", "embedding_only", "rope_frequency_base", "rope_frequency_scale"];
  for (const n of current) assert.equal(parameterSpec(n)?.legacy, false, n);
  for (const n of legacy) assert.equal(parameterSpec(n)?.legacy, true, n);
  assert.equal(PARAMETERS.length, current.length + legacy.length);
  assert.equal(parameterSpec("num_batch")?.default, 512);
  assert.equal(parameterSpec("temperature")?.default, 0.8);
  assert.equal(parameterSpec("top_k")?.type, "int");
  assert.equal(parameterSpec("mirostat")?.ignored, true);
  assert.equal(parameterSpec("use_mlock")?.ignored, false);
  assert.deepEqual(parameterSpec("draft_num_predict"), { name: "draft_num_predict", type: "int", default: 4, legacy: false, ignored: false });
});

test("PARAMETER draft_num_predict is an integer; a wrong value is an error at its position", () => {
  const ok = parseModelfile("FROM m\nDRAFT ./d.gguf\nPARAMETER draft_num_predict 8\n");
  assert.deepEqual(ok.diagnostics, []);
  assert.deepEqual(typeParameters(ok.ast.commands).params, { draft_num_predict: 8 });
  const bad = parseModelfile("FROM m\nPARAMETER draft_num_predict many\n");
  assert.deepEqual(bad.diagnostics.map((d) => `${d.line}:${d.column} ${d.message}`), ['2:29 invalid value "many" for parameter draft_num_predict: expected an integer']);
  assert.deepEqual(validateOptions({ draft_num_predict: 2 }), { ok: true, options: { draft_num_predict: 2 }, warnings: [] });
});

test("ints reject decimals and exponents", () => {
  assert.deepEqual(typeParameter("num_ctx", "4096"), { ok: true, value: 4096 });
  assert.deepEqual(typeParameter("seed", "-1"), { ok: true, value: -1 });
  assert.deepEqual(typeParameter("seed", "+7"), { ok: true, value: 7 });
  for (const bad of ["1.0", "1e3", "", " 1", "0x10", "abc", "99999999999999999999"]) {
    assert.deepEqual(typeParameter("num_ctx", bad), { ok: false, expected: "an integer" }, bad);
  }
});

test("floats accept exponents and reject words", () => {
  assert.deepEqual(typeParameter("temperature", "1e-3"), { ok: true, value: 0.001 });
  assert.deepEqual(typeParameter("top_p", ".5"), { ok: true, value: 0.5 });
  assert.deepEqual(typeParameter("top_p", "5."), { ok: true, value: 5 });
  assert.deepEqual(typeParameter("min_p", "-0"), { ok: true, value: 0 });
  for (const bad of ["abc", "", "1e", "inf", "NaN", "1,5", "1e999"]) {
    assert.deepEqual(typeParameter("temperature", bad), { ok: false, expected: "a number" }, bad);
  }
});

test("bools accept true/false/t/f/1/0 in any case", () => {
  for (const [raw, v] of [["true", true], ["TRUE", true], ["T", true], ["1", true], ["False", false], ["f", false], ["0", false]] as const) {
    assert.deepEqual(typeParameter("use_mmap", raw), { ok: true, value: v }, raw);
  }
  for (const bad of ["yes", "no", "2", ""]) assert.equal(typeParameter("use_mmap", bad).ok, false, bad);
});

test("stop values are strings as written; unknown names are refused", () => {
  assert.deepEqual(typeParameter("stop", "  <|end|> "), { ok: true, value: "  <|end|> " });
  assert.deepEqual(typeParameter("nope", "1"), { ok: false, expected: "a known parameter" });
});

test("typeParameters: stop accumulates, scalars last wins, one warning per ignored legacy name", () => {
  const { ast } = parseModelfile("FROM m\nPARAMETER stop a\nPARAMETER top_k 1\nPARAMETER stop b\nPARAMETER top_k 2\nPARAMETER tfs_z 1\nPARAMETER tfs_z 2\n");
  const { params, diagnostics } = typeParameters(ast.commands);
  assert.deepEqual(params, { stop: ["a", "b"], top_k: 2, tfs_z: 2 });
  assert.equal(diagnostics.length, 1);
  assert.equal(diagnostics[0]!.severity, "warning");
  assert.equal(diagnostics[0]!.line, 6);
});

test("typeParameters works on commands without positions", () => {
  const { params, diagnostics } = typeParameters([
    { kind: "parameter", name: "num_ctx", value: "1.5" },
    { kind: "parameter", name: "stop", value: "x" },
  ]);
  assert.deepEqual(params, { stop: ["x"] });
  assert.equal(diagnostics[0]!.line, 1);
  assert.equal(diagnostics[0]!.message, 'invalid value "1.5" for parameter num_ctx: expected an integer');
});

test("validateOptions types a request's options", () => {
  const r = validateOptions({ temperature: 0.5, num_ctx: 2048, use_mmap: false, stop: ["a", "b"], seed: null });
  assert.deepEqual(r, { ok: true, options: { temperature: 0.5, num_ctx: 2048, use_mmap: false, stop: ["a", "b"] }, warnings: [] });
  assert.deepEqual(validateOptions({ stop: "x" }), { ok: true, options: { stop: ["x"] }, warnings: [] });
  assert.deepEqual(validateOptions(undefined), { ok: true, options: {}, warnings: [] });
});

test("validateOptions names the expected type and warns about unknown and ignored keys", () => {
  const r = validateOptions({ num_ctx: 1.5, temperature: "hot", use_mmap: 1, stop: [1], temprature: 1, mirostat: 1 });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(r.errors, [
    "invalid value 1.5 for option num_ctx: expected an integer",
    'invalid value "hot" for option temperature: expected a number',
    "invalid value 1 for option use_mmap: expected a boolean (true or false)",
    "invalid value [1] for option stop: expected a list of strings",
  ]);
  assert.deepEqual(r.warnings, [
    'unknown option "temprature" ignored (did you mean temperature?)',
    "option mirostat is accepted for compatibility but ignored by the engine",
  ]);
  assert.equal(validateOptions([1]).ok, false);
  assert.equal(validateOptions("x").ok, false);
});
