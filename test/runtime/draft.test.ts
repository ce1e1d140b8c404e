/**
 * Speculative decoding, end to end on the real engine: the generated target and its draft (BIGRAM_TARGET /
 * BIGRAM_DRAFT, which agree on every greedy next token) built twice, with and without DRAFT, served by one
 * server with two slots; /api/ps, /api/show and /api/create; `mf ps`, `mf show` and `mf build` as the real
 * binary (`npm run build` first).
 */
import assert from "node:assert/strict";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { digestFile } from "../../core/digest.js";
import { parseRef } from "../../core/reference.js";
import { BIGRAM_DRAFT, BIGRAM_TARGET, cachedFixture } from "../../fixtures/gguf/index.js";
import { ROOT, mf as runMf } from "../helpers/mf.js";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
let ctx: string;
let draftDigest: string;
before(async () => {
  h = await startHarness({ scheduler: { numParallel: 2, maxLoaded: 4 } });
  ctx = join(h.dir, "draft-ctx");
  await mkdir(ctx, { recursive: true });
  const cache = join(ROOT, ".mf-test-cache");
  await copyFile(await cachedFixture(BIGRAM_TARGET, cache), join(ctx, "target.gguf"));
  await copyFile(await cachedFixture(BIGRAM_DRAFT, cache), join(ctx, "draft.gguf"));
  draftDigest = await digestFile(join(ctx, "draft.gguf"));
  const models: [string, string][] = [
    ["target", "FROM ./target.gguf\nPARAMETER num_ctx 512\n"],
    ["fast", "FROM ./target.gguf\nDRAFT ./draft.gguf\nPARAMETER num_ctx 512\n"],
    ["fast6", "FROM ./target.gguf\nDRAFT ./draft.gguf\nPARAMETER num_ctx 512\nPARAMETER draft_num_predict 6\n"],
  ];
  for (const [name, text] of models) {
    await writeFile(join(ctx, `${name}.modelfile`), text);
    await buildFromModelfile(join(ctx, `${name}.modelfile`), { store: h.store, tags: [parseRef(name)], contextDir: ctx, homeDir: h.dir });
  }
});
after(async () => h?.close());

const GREEDY = { temperature: 0, num_predict: 48 };
const PROMPTS = ["Hello world", "Once upon a time", "Why is the sky blue?"];

async function generate(model: string, prompt: string, options: Record<string, unknown> = GREEDY): Promise<{ response: string; context: number[]; eval_count: number }> {
  const r = await post(h.base, "/api/generate", { model, prompt, raw: true, stream: false, options });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

interface PsDraft {
  digest: string;
  size: number;
  draft_num_predict: number;
  accepted_tokens: number;
  rejected_tokens: number;
  decodes: number;
}
interface PsModel {
  name: string;
  size: number;
  draft?: PsDraft;
}
/** /api/ps by name (the runner with a draft, where a name has two) */
async function ps(): Promise<Map<string, PsModel>> {
  const list = await psList();
  return new Map(list.sort((a, b) => Number(!!a.draft) - Number(!!b.draft)).map((m) => [m.name, m]));
}
async function psList(): Promise<PsModel[]> {
  return ((await (await fetch(h.base + "/api/ps")).json()) as { models: PsModel[] }).models;
}

describe("speculative decoding with the image's DRAFT", { concurrency: false }, () => {
  test("at temperature 0 the answer with the draft is token for token the answer without it, and drafted tokens were accepted", async () => {
    for (const prompt of PROMPTS) {
      const plain = await generate("target", prompt);
      const fast = await generate("fast", prompt);
      assert.equal(plain.eval_count, GREEDY.num_predict, "a full answer, not one cut short");
      assert.deepEqual(fast.context, plain.context, prompt);
      assert.equal(fast.response, plain.response);
    }
    const loaded = await ps();
    const d = loaded.get("fast:latest")?.draft;
    assert.ok(d, "/api/ps shows the draft");
    assert.equal(d.digest, draftDigest.replace(/^sha256:/, ""));
    assert.equal(d.draft_num_predict, 4, "Ollama's default");
    assert.ok(d.size > 0 && d.size < loaded.get("fast:latest")!.size);
    assert.ok(d.accepted_tokens >= PROMPTS.length * 8, `the target took the draft's tokens: ${JSON.stringify(d)}`);
    assert.equal(loaded.get("target:latest")?.draft, undefined, "no draft where the image has none");
  });

  test("one target decode checks all of a step's drafted tokens: an answer takes far fewer target decodes than tokens", async () => {
    // node-llama-cpp 3.21.1 as published checked only a decode's first drafted token (at most two tokens
    // per decode, so at least N/2 decodes for N tokens); mf's patch checks them all
    const before = (await ps()).get("fast:latest")!.draft!;
    const a = await generate("fast", PROMPTS[1]!);
    const after = (await ps()).get("fast:latest")!.draft!;
    const decodes = after.decodes - before.decodes;
    const accepted = after.accepted_tokens - before.accepted_tokens;
    const figures = JSON.stringify({ tokens: a.eval_count, decodes, accepted, rejected: after.rejected_tokens - before.rejected_tokens });
    assert.equal(a.eval_count, GREEDY.num_predict);
    assert.ok(decodes > 0, figures);
    // a decode checks up to 4 (draft_num_predict); the draft stops early at a token it is unsure of
    assert.ok(accepted >= 2 * decodes, `at least two drafted tokens taken per decode: ${figures}`);
    assert.ok(decodes * 3 <= a.eval_count, `48 tokens from at most 16 target decodes: ${figures}`);
  });

  test("two requests at once (two slots, each with its own draft sequence) answer as each does alone", async () => {
    const alone = await Promise.all(PROMPTS.slice(0, 2).map(async (p) => (await generate("target", p)).context));
    const before = (await ps()).get("fast:latest")!.draft!.accepted_tokens;
    const together = await Promise.all(PROMPTS.slice(0, 2).map(async (p) => (await generate("fast", p)).context));
    assert.deepEqual(together, alone);
    assert.ok((await ps()).get("fast:latest")!.draft!.accepted_tokens > before, "drafting went on with both slots busy");
  });

  test("a request with a repeat penalty drafts nothing and answers as the target does", async () => {
    // with drafting on, "zzz" would answer otherwise: node-llama-cpp checks a drafted token against the
    // penalty list as it stood before the decode
    const options = { ...GREEDY, repeat_penalty: 1.1, repeat_last_n: 64 };
    const before = (await ps()).get("fast:latest")!.draft!;
    for (const prompt of ["zzz", PROMPTS[0]!]) assert.deepEqual((await generate("fast", prompt, options)).context, (await generate("target", prompt, options)).context);
    const after = (await ps()).get("fast:latest")!.draft!;
    assert.deepEqual([after.accepted_tokens, after.rejected_tokens], [before.accepted_tokens, before.rejected_tokens]);
  });

  test("draft_num_predict: the image's parameter, then the request's option (which reloads); 0 runs no draft", async () => {
    await generate("fast6", PROMPTS[0]!);
    assert.equal((await ps()).get("fast6:latest")?.draft?.draft_num_predict, 6);
    const two = await generate("fast6", PROMPTS[0]!, { ...GREEDY, draft_num_predict: 2 });
    assert.equal((await ps()).get("fast6:latest")?.draft?.draft_num_predict, 2);
    assert.deepEqual(two.context, (await generate("target", PROMPTS[0]!)).context);
    // fast and fast6 have the same weights and draft: one runner, reloaded when draft_num_predict changes
    assert.deepEqual((await psList()).filter((m) => m.draft).map((m) => m.name), ["fast6:latest"]);
    // without its draft, fast is the target's weights alone: it shares the target's runner
    const drafted = async () => (await psList()).find((m) => m.draft)!.draft!.accepted_tokens;
    const [before, drafting] = [await drafted(), (await psList()).filter((m) => m.draft).length];
    const none = await generate("fast", PROMPTS[1]!, { ...GREEDY, draft_num_predict: 0 });
    assert.deepEqual(none.context, (await generate("target", PROMPTS[1]!)).context);
    // ps lists each name asked for: fast now also stands on the target's runner, without a draft
    const list = await psList();
    const plainFast = list.find((m) => m.name === "fast:latest" && !m.draft);
    assert.ok(plainFast, "fast is listed on the target's runner");
    assert.equal(plainFast.size, list.find((m) => m.name === "target:latest")!.size, "no runner was loaded for it");
    assert.equal(list.filter((m) => m.draft).length, drafting);
    assert.equal(await drafted(), before, "the draft did not run");
  });
});

describe("the draft in /api/show, /api/create and the CLI", { concurrency: false }, () => {
  test("/api/show: the modelfile's DRAFT line and the draft's details; none for a model without", async () => {
    const r = await post(h.base, "/api/show", { model: "fast" });
    assert.equal(r.status, 200);
    assert.match(r.json.modelfile, new RegExp(`\\nDRAFT \\S+${draftDigest.replace(/^sha256:/, "sha256-")}\\n`));
    assert.equal(r.json.draft.digest, draftDigest);
    assert.equal(r.json.draft.format, "gguf");
    assert.equal(r.json.draft.family, "llama");
    assert.equal(r.json.draft.quantization_level, "F16");
    const plain = await post(h.base, "/api/show", { model: "target" });
    assert.equal(plain.json.draft, undefined);
    assert.doesNotMatch(plain.json.modelfile, /^DRAFT/m);
  });

  test("/api/create: draft_files names the draft's blob; a DRAFT path is refused by a server that reads no files; FROM's blob as the draft is a 400", async () => {
    const upload = async (file: string) => {
      const digest = await digestFile(file);
      const res = await fetch(`${h.base}/api/blobs/${digest}`, { method: "POST", body: await readFile(file) });
      assert.ok([200, 201].includes(res.status));
      return digest;
    };
    const t = await upload(join(ctx, "target.gguf"));
    const d = await upload(join(ctx, "draft.gguf"));
    const ok = await post(h.base, "/api/create", { model: "made", files: { "target.gguf": t }, draft_files: { "draft.gguf": d }, stream: false });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await post(h.base, "/api/show", { model: "made" })).json.draft.digest, d);
    assert.deepEqual((await generate("made", PROMPTS[2]!)).context, (await generate("target", PROMPTS[2]!)).context);

    const path = await post(h.base, "/api/create", { model: "nope", modelfile: `FROM ${t}\nDRAFT ./draft.gguf\n`, stream: false });
    assert.equal(path.status, 400);
    assert.match(path.json.error, /Modelfile:2:7: "\.\/draft\.gguf" names a file on the server, and this server reads none/);
    const same = await post(h.base, "/api/create", { model: "nope", files: { "target.gguf": t }, draft_files: { "target.gguf": t }, stream: false });
    assert.equal(same.status, 400);
    assert.match(same.json.error, /DRAFT must not reference the same local path as FROM/);
  });

  /** The real `mf` binary against this server and store. */
  const mf = (args: string[]) =>
    runMf(args, { cwd: ctx, env: { HOME: h.dir, MF_HOME: join(h.dir, "mfhome"), MF_MODELS: h.store.root, MF_HOST: h.base.replace(/^http:\/\//, "") } });

  test("mf ps shows a DRAFT column for a model decoding with a draft", async () => {
    await generate("fast", PROMPTS[0]!);
    const r = await mf(["ps"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+DRAFT\s+UNTIL\n/);
    assert.match(r.stdout, new RegExp(`\\nfast:latest\\s+[0-9a-f]{12}\\s+.*\\s512\\s+${draftDigest.slice(7, 19)} \\(4 tokens\\)\\s`));
  });

  test("mf show: the Draft section and DRAFT in --modelfile; mf build: a DRAFT error with its line and column", async () => {
    const show = await mf(["show", "fast"]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /\n {2}Draft\n {4}architecture\s+llama\n {4}parameters\s+\S+\n {4}quantization\s+F16\n/);
    const mfile = await mf(["show", "fast", "--modelfile"]);
    assert.match(mfile.stdout, /\nFROM \S+\nDRAFT \S+\n/);
    await writeFile(join(ctx, "Same"), "FROM ./target.gguf\nDRAFT ./target.gguf\n");
    const bad = await mf(["build", "-f", "Same", "-t", "same", "."]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Same:2:7: error: DRAFT must not reference the same local path as FROM: \.\/target\.gguf/);
  });
});
