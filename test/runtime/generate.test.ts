/** /api/generate and /api/chat over real HTTP with the real engine on the generated tiny model. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
/** the server's warnings, as pino JSON lines */
const warnings: string[] = [];
before(async () => {
  h = await startHarness({ logger: { level: "warn", stream: { write: (line: string) => void warnings.push(line) } } });
});
after(async () => h?.close());

const hot = (seed: number, extra: Record<string, unknown> = {}) => ({ seed, temperature: 1.5, top_k: 0, top_p: 1, ...extra });

describe("/api/generate", { concurrency: false }, () => {
  test("non-streamed: one object with the answer, context and nanosecond statistics", async () => {
    const r = await post(h.base, "/api/generate", { model: "chat", prompt: "hello", stream: false, options: hot(1, { num_predict: 12 }) });
    assert.equal(r.status, 200);
    const j = r.json;
    assert.equal(j.model, "chat");
    assert.match(j.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.equal(j.done, true);
    assert.ok(["stop", "length"].includes(j.done_reason));
    assert.equal(typeof j.response, "string");
    for (const k of ["total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"]) {
      assert.ok(Number.isInteger(j[k]) && j[k] >= 0, k);
    }
    assert.ok(j.total_duration >= j.prompt_eval_duration + j.eval_duration);
    assert.ok(j.prompt_eval_count > 3);
    assert.ok(Array.isArray(j.context) && j.context.length === j.prompt_eval_count + j.eval_count);
  });

  test("streamed: NDJSON chunks whose text adds up to the non-streamed answer; the last carries the statistics", async () => {
    const body = { model: "chat", prompt: "tell me", options: hot(5, { num_predict: 24 }) };
    const s = await post(h.base, "/api/generate", body);
    assert.equal(s.status, 200);
    assert.match(s.headers.get("content-type") ?? "", /application\/x-ndjson/);
    assert.ok(s.lines.length >= 2);
    const last = s.lines.at(-1);
    assert.equal(last.done, true);
    assert.equal(last.response, "");
    assert.ok(s.lines.slice(0, -1).every((l) => l.done === false && typeof l.response === "string"));
    const streamed = s.lines.map((l) => l.response).join("");
    const n = await post(h.base, "/api/generate", { ...body, stream: false });
    assert.equal(n.json.response, streamed);
    assert.equal(n.json.eval_count, last.eval_count);
  });

  test("the same seed gives the same text, another seed another", async () => {
    const gen = async (seed: number) =>
      (await post(h.base, "/api/generate", { model: "raw", prompt: "once upon a time", stream: false, options: hot(seed, { num_predict: 32 }) })).json.response;
    const a = await gen(42);
    assert.ok(a.length > 0);
    assert.equal(await gen(42), a);
    assert.notEqual(await gen(43), a);
  });

  test("num_predict is honoured exactly", async () => {
    for (const n of [1, 7, 33]) {
      const j = (await post(h.base, "/api/generate", { model: "raw", prompt: "abc", stream: false, options: hot(3, { num_predict: n }) })).json;
      assert.equal(j.done_reason, "length", `seed 3 does not meet an end token within ${n}`);
      assert.equal(j.eval_count, n);
    }
  });

  test("stop strings end the answer before them", async () => {
    const body = { model: "raw", prompt: "the weather", stream: false };
    const full = (await post(h.base, "/api/generate", { ...body, options: hot(9, { num_predict: 48 }) })).json.response as string;
    assert.ok(full.length > 12, full);
    const stop = full.slice(8, 11);
    const cut = (await post(h.base, "/api/generate", { ...body, options: hot(9, { num_predict: 48, stop: [stop] }) })).json;
    assert.equal(cut.response, full.slice(0, full.indexOf(stop)));
    assert.equal(cut.done_reason, "stop");
  });

  test('format "json" gives JSON that parses', async () => {
    for (const seed of [1, 2]) {
      const j = (await post(h.base, "/api/generate", { model: "chat", prompt: "answer in JSON", format: "json", stream: false, options: { seed, num_predict: 400 } })).json;
      assert.doesNotThrow(() => JSON.parse(j.response), j.response);
    }
  });

  test("generation ends at the model's end-of-generation token: done_reason stop, no tokens past it", async () => {
    // once the schema's value is complete the grammar allows only the end of generation
    const j = (await post(h.base, "/api/generate", { model: "chat", prompt: "yes or no", format: { type: "boolean" }, stream: false, options: { seed: 3, num_predict: 200 } })).json;
    assert.ok(["true", "false"].includes(j.response.trim()), j.response);
    assert.equal(j.done_reason, "stop");
    assert.ok(j.eval_count < 20, `eval_count ${j.eval_count}: generation went on past the end token`);
  });

  test("format as a JSON Schema gives JSON that matches it", async () => {
    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" }, ok: { type: "boolean" } },
      required: ["name", "age", "ok"],
    };
    const j = (await post(h.base, "/api/generate", { model: "chat", prompt: "a person", format: schema, stream: false, options: { seed: 4, num_predict: 300 } })).json;
    const v = JSON.parse(j.response);
    assert.equal(typeof v.name, "string");
    assert.ok(v.name.length <= 12);
    assert.equal(typeof v.age, "number");
    assert.equal(typeof v.ok, "boolean");
  });

  test("context round trip: the returned context is prepended to the next prompt", async () => {
    const first = (await post(h.base, "/api/generate", { model: "chat", prompt: "remember this", stream: false, options: hot(1, { num_predict: 5 }) })).json;
    const second = (await post(h.base, "/api/generate", { model: "chat", prompt: "and this", context: first.context, stream: false, options: hot(1, { num_predict: 5 }) })).json;
    assert.deepEqual(second.context.slice(0, first.context.length), first.context);
    assert.ok(second.prompt_eval_count > first.context.length);
  });

  test("_debug_render_only returns the rendered prompt without running the model", async () => {
    const r = await post(h.base, "/api/generate", { model: "chat", prompt: "hi", _debug_render_only: true });
    assert.equal(r.status, 200);
    assert.equal(r.json.done, true);
    assert.equal(r.json._debug_info.image_count, 0);
    assert.equal(
      r.json._debug_info.rendered_template,
      "<|im_start|>system\nYou are a test.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    );
    const raw = await post(h.base, "/api/generate", { model: "chat", prompt: "as is", raw: true, _debug_render_only: true });
    assert.equal(raw.json._debug_info.rendered_template, "as is");
    const bad = await post(h.base, "/api/generate", { model: "chat", prompt: "x", template: "{{ .Nope.X }}", _debug_render_only: true });
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /template/);
  });

  test("options: temperature 0 is greedy, num_ctx sizes the context; options without a knob are accepted and logged once", async () => {
    const greedy = async (seed: number) =>
      (await post(h.base, "/api/generate", { model: "raw", prompt: "greedy", stream: false, options: { seed, temperature: 0, num_predict: 16, num_ctx: 768 } })).json;
    const a = await greedy(1);
    assert.equal((await greedy(2)).response, a.response, "no sampling at temperature 0");
    const ps = ((await (await fetch(h.base + "/api/ps")).json()) as { models: any[] }).models;
    assert.equal(ps.find((m) => m.name === "raw:latest")?.context_length, 768, "the image says 256, the request 768");
    const unapplied = { mirostat: 1, mirostat_tau: 0.8, typical_p: 0.7, tfs_z: 0.5, num_gpu: 1, use_mmap: true, penalize_newline: true };
    for (let i = 0; i < 2; i++) {
      const r = await post(h.base, "/api/generate", { model: "raw", prompt: "x", stream: false, options: { ...unapplied, seed: 1, num_predict: 2, num_ctx: 768 } });
      assert.equal(r.status, 200, r.text);
    }
    for (const k of Object.keys(unapplied)) {
      const lines = warnings.filter((l) => new RegExp(`option ${k} is accepted`).test(l));
      assert.equal(lines.length, 1, `${k} reported once: ${lines.join("")}`);
      assert.equal(JSON.parse(lines[0]!).level, 40);
    }
  });

  test("an over-long prompt is truncated to fit num_ctx", async () => {
    const j = (await post(h.base, "/api/generate", { model: "raw", prompt: "word ".repeat(600), raw: true, stream: false, options: hot(1, { num_predict: 4 }) })).json;
    assert.equal(j.done, true);
    assert.ok(j.prompt_eval_count < 256 && j.prompt_eval_count > 100, String(j.prompt_eval_count));
    assert.equal(j.eval_count, 4);
  });

  test("bad requests are 400/404 with an error, and the server stays up", async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ prompt: "x" }, 400, /model is required/],
      [{ model: "nope", prompt: "x" }, 404, /model "nope" not found, try pulling it first/],
      ["{not json", 400, /invalid JSON/],
      [{ model: "chat", prompt: 3 }, 400, /prompt/],
      [{ model: "chat", prompt: "x", options: { temperature: "hot" } }, 400, /temperature/],
      [{ model: "chat", prompt: "x", options: { num_predict: 1.5 } }, 400, /num_predict/],
      [{ model: "chat", prompt: "x", keep_alive: "soon" }, 400, /keep_alive/],
      [{ model: "chat", prompt: "x", format: "yaml" }, 400, /format/],
      [{ model: "chat", prompt: "x", images: ["aGk="] }, 400, /images are not supported/],
      [{ model: "chat", prompt: "x", raw: true, system: "s" }, 400, /raw mode/],
      [{ model: "chat", prompt: "x", raw: true, context: [1] }, 400, /raw mode/],
      [{ model: "chat", prompt: "x", context: [1, -5] }, 400, /invalid context\.1/],
    ];
    for (const [body, status, re] of cases) {
      const r = await post(h.base, "/api/generate", body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.match(r.json.error, re);
    }
    assert.equal((await fetch(h.base + "/")).status, 200);
  });

  test("an empty prompt loads (done_reason load), keep_alive 0 unloads; /api/ps shows it", async () => {
    const ps = async () => ((await (await fetch(h.base + "/api/ps")).json()) as { models: any[] }).models;
    const load = await post(h.base, "/api/generate", { model: "raw", keep_alive: "10m" });
    assert.equal(load.json.done_reason, "load");
    const entry = (await ps()).find((m) => m.name === "raw:latest");
    assert.ok(entry, "raw is loaded");
    const ahead = Date.parse(entry.expires_at) - Date.now();
    assert.ok(ahead > 9 * 60_000 && ahead <= 10 * 60_000, String(ahead));
    assert.ok(entry.size > 0 && entry.size_vram === 0 && entry.context_length >= 256);
    const forever = await post(h.base, "/api/generate", { model: "raw", keep_alive: -1 });
    assert.equal(forever.json.done_reason, "load");
    assert.ok(Date.parse((await ps()).find((m) => m.name === "raw:latest").expires_at) > Date.now() + 1e11);
    const unload = await post(h.base, "/api/generate", { model: "raw", keep_alive: 0 });
    assert.equal(unload.json.done_reason, "unload");
    assert.equal((await ps()).find((m) => m.name === "raw:latest"), undefined);
    // a generation with keep_alive 0 unloads when it is done
    await post(h.base, "/api/generate", { model: "raw", prompt: "x", keep_alive: 0, stream: false, options: { num_predict: 2 } });
    assert.equal((await ps()).find((m) => m.name === "raw:latest"), undefined);
  });
});

describe("/api/chat", { concurrency: false }, () => {
  const msgs = [{ role: "user", content: "hello there" }];

  test("non-streamed and streamed answers agree", async () => {
    const body = { model: "chat", messages: msgs, options: hot(2, { num_predict: 16 }) };
    const n = await post(h.base, "/api/chat", { ...body, stream: false });
    assert.equal(n.status, 200);
    assert.equal(n.json.message.role, "assistant");
    assert.equal(n.json.done, true);
    assert.ok(n.json.eval_count > 0);
    const s = await post(h.base, "/api/chat", body);
    assert.ok(s.lines.slice(0, -1).every((l) => l.message.role === "assistant" && l.done === false));
    assert.equal(s.lines.map((l) => l.message.content).join(""), n.json.message.content);
    assert.equal(s.lines.at(-1).done, true);
  });

  test("history and the image's SYSTEM are rendered; a request system message replaces it", async () => {
    const r = await post(h.base, "/api/chat", {
      model: "chat",
      messages: [{ role: "user", content: "a" }, { role: "assistant", content: "b" }, { role: "user", content: "c" }],
      _debug_render_only: true,
    });
    assert.equal(
      r.json._debug_info.rendered_template,
      "<|im_start|>system\nYou are a test.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n",
    );
    const own = await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "system", content: "S" }, { role: "user", content: "u" }], _debug_render_only: true });
    assert.ok(own.json._debug_info.rendered_template.startsWith("<|im_start|>system\nS<|im_end|>"));
  });

  test("an over-long history keeps the system message and the newest turns", async () => {
    const long = Array.from({ length: 60 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `turn ${i} ` + "blah ".repeat(20) }));
    const ask = async (system: string, last = "last") =>
      (await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "system", content: system }, ...long, { role: "user", content: last }], stream: false, options: hot(1, { num_predict: 8 }) })).json;
    const j = await ask("You are a pirate.");
    assert.equal(j.done, true);
    // whole turns are dropped so that the prompt leaves room to answer (a quarter of the context, at most 256)
    assert.ok(j.prompt_eval_count <= 512 - 128 && j.prompt_eval_count > 200, String(j.prompt_eval_count));
    // the system message survives the cut: another one gives another answer
    const other = await ask("You are a parrot.");
    assert.notEqual(other.message.content, j.message.content);
    assert.equal((await ask("You are a pirate.")).message.content, j.message.content);
  });

  test("format json on chat; empty messages load; errors", async () => {
    const j = (await post(h.base, "/api/chat", { model: "chat", messages: msgs, format: "json", stream: false, options: { seed: 1, num_predict: 400 } })).json;
    assert.doesNotThrow(() => JSON.parse(j.message.content));
    assert.equal((await post(h.base, "/api/chat", { model: "chat", messages: [] })).json.done_reason, "load");
    assert.equal((await post(h.base, "/api/chat", { messages: msgs })).status, 400);
    assert.equal((await post(h.base, "/api/chat", { model: "nope", messages: msgs })).status, 404);
    assert.equal((await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "user", content: "x", images: ["aGk="] }] })).status, 400);
    assert.equal((await post(h.base, "/api/chat", { model: "chat", messages: "hi" })).status, 400);
  });
});

describe("capabilities: suffix and tools", { concurrency: false }, () => {
  const FIM = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>";
  const TOOLS = `{{- if .Tools }}<|im_start|>system
Tools: {{ json .Tools }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ json .Function.Arguments }}}{{ end }}{{ else }}{{ .Content }}{{ end }}<|im_end|>
{{ end }}<|im_start|>assistant
`;
  const weather = { type: "function", function: { name: "get_weather", description: "the weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
  // a call is forced through `format`: random weights would never write one by themselves
  const callSchema = {
    type: "object",
    properties: {
      name: { type: "string", enum: ["get_weather"] },
      arguments: { type: "object", properties: { city: { type: "string", maxLength: 8 } }, required: ["city"] },
    },
    required: ["name", "arguments"],
  };

  before(async () => {
    for (const [model, template] of [["fim", FIM], ["tooly", TOOLS]]) {
      const r = await post(h.base, "/api/create", { model, from: "chat", template, stream: false });
      assert.equal(r.status, 200, r.text);
    }
  });

  test("suffix needs a template with .Suffix: else a 400, not a prompt silently dropped", async () => {
    const r = await post(h.base, "/api/generate", { model: "chat", prompt: "def f(", suffix: "return 1", stream: false });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, '"chat" does not support insert');
    const dbg = await post(h.base, "/api/generate", { model: "fim", prompt: "def f(", suffix: "return 1", _debug_render_only: true });
    assert.equal(dbg.json._debug_info.rendered_template, "<PRE> def f( <SUF>return 1 <MID>");
    const g = await post(h.base, "/api/generate", { model: "fim", prompt: "def f(", suffix: "return 1", stream: false, options: hot(1, { num_predict: 4 }) });
    assert.equal(g.status, 200);
    assert.equal(g.json.eval_count, 4);
    // a request template with .Suffix makes any model insert-capable
    const own = await post(h.base, "/api/generate", { model: "chat", prompt: "a", suffix: "b", template: "{{ .Prompt }}|{{ .Suffix }}", _debug_render_only: true });
    assert.equal(own.json._debug_info.rendered_template, "a|b");
    assert.deepEqual((await post(h.base, "/api/show", { model: "fim" })).json.capabilities, ["completion", "insert"]);
  });

  test("tools need a template with .Tools: else a 400", async () => {
    const r = await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "user", content: "weather?" }], tools: [weather] });
    assert.equal(r.status, 400);
    assert.equal(r.json.error, '"chat" does not support tools');
    assert.deepEqual((await post(h.base, "/api/show", { model: "tooly" })).json.capabilities, ["completion", "tools"]);
  });

  test("tools are rendered through .Tools, and earlier calls and results through the messages", async () => {
    const r = await post(h.base, "/api/chat", {
      model: "tooly",
      messages: [
        { role: "user", content: "weather in Paris?" },
        { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }] },
        { role: "tool", content: "sunny" },
      ],
      tools: [weather],
      _debug_render_only: true,
    });
    const p: string = r.json._debug_info.rendered_template;
    assert.ok(p.startsWith(`<|im_start|>system\nTools: [{"type":"function","function":{"name":"get_weather"`), p);
    assert.match(p, /<\|im_start\|>assistant\n\{"name": "get_weather", "arguments": \{"city":"Paris"\}\}<\|im_end\|>\n<\|im_start\|>tool\nsunny<\|im_end\|>\n<\|im_start\|>assistant\n$/);
  });

  test("an answer that is a call comes back as message.tool_calls, streamed or not", async () => {
    const body = { model: "tooly", messages: [{ role: "user", content: "weather?" }], tools: [weather], format: callSchema, options: { seed: 2, num_predict: 200 } };
    const n = await post(h.base, "/api/chat", { ...body, stream: false });
    assert.equal(n.status, 200, n.text);
    assert.equal(n.json.message.content, "");
    const calls = n.json.message.tool_calls;
    assert.equal(calls.length, 1);
    assert.equal(calls[0].function.name, "get_weather");
    assert.equal(typeof calls[0].function.arguments.city, "string");
    const s = await post(h.base, "/api/chat", body);
    const withCalls = s.lines.filter((l) => l.message.tool_calls);
    assert.equal(withCalls.length, 1);
    // each call has an id of its own; the rest is the same answer
    const noId = (cs: { id?: string }[]) => cs.map(({ id, ...c }) => (assert.match(id ?? "", /^call_[A-Za-z0-9_-]{8,}$/), c));
    assert.deepEqual(noId(withCalls[0].message.tool_calls), noId(calls));
    assert.equal(withCalls[0].done, false);
    assert.equal(s.lines.at(-1).done, true);
    // without tools in the request a call-shaped answer is plain text
    const plain = await post(h.base, "/api/chat", { ...body, tools: undefined, stream: false });
    assert.equal(plain.json.message.tool_calls, undefined);
    assert.equal(JSON.parse(plain.json.message.content).name, "get_weather");
  });
});

describe("an image without TEMPLATE: the GGUF's own chat template", { concurrency: false }, () => {
  // `raw` is built without TEMPLATE from the tiny GGUF, whose tokenizer.chat_template is ChatML
  const chatml = (...turns: [string, string][]) => turns.map(([r, c]) => `<|im_start|>${r}\n${c}<|im_end|>\n`).join("");

  test("chat and generate render through it; raw stays as is", async () => {
    const c = await post(h.base, "/api/chat", { model: "raw", messages: [{ role: "system", content: "S" }, { role: "user", content: "hi" }], _debug_render_only: true });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.json._debug_info.rendered_template, chatml(["system", "S"], ["user", "hi"]) + "<|im_start|>assistant\n");
    const g = await post(h.base, "/api/generate", { model: "raw", prompt: "hi", system: "S", _debug_render_only: true });
    assert.equal(g.json._debug_info.rendered_template, chatml(["system", "S"], ["user", "hi"]) + "<|im_start|>assistant\n");
    const prefill = await post(h.base, "/api/chat", { model: "raw", messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "It's" }], _debug_render_only: true });
    assert.ok(prefill.json._debug_info.rendered_template.startsWith(chatml(["user", "hi"]) + "<|im_start|>assistant\nIt's"), prefill.json._debug_info.rendered_template);
    const raw = await post(h.base, "/api/generate", { model: "raw", prompt: "as is", raw: true, _debug_render_only: true });
    assert.equal(raw.json._debug_info.rendered_template, "as is");
    // a request template still wins
    const own = await post(h.base, "/api/chat", { model: "raw", messages: [{ role: "user", content: "x" }], template: "{{ range .Messages }}{{ .Content }}{{ end }}", _debug_render_only: true });
    assert.equal(own.json._debug_info.rendered_template, "x");
  });

  test("the prompt the model evaluates is that rendering", async () => {
    const body = { model: "raw", prompt: "hello", stream: false, options: hot(1, { num_predict: 3 }) };
    const j = (await post(h.base, "/api/generate", body)).json;
    const viaTemplate = (await post(h.base, "/api/generate", { ...body, prompt: chatml(["user", "hello"]) + "<|im_start|>assistant\n", raw: true })).json;
    assert.deepEqual(j.context, viaTemplate.context);
    assert.equal(j.response, viaTemplate.response);
  });

  test("a GGUF without a chat template, or with one that does not parse: the prompt as is", async () => {
    for (const [name, chatTemplate] of [["plain", null], ["broken-jinja", "{% for %}"]] as const) {
      const ctx = join(h.dir, `${name}-ctx`);
      await mkdir(ctx, { recursive: true });
      await writeLlamaGguf(join(ctx, "m.gguf"), { ...TINY, chatTemplate });
      await writeFile(join(ctx, "Modelfile"), "FROM ./m.gguf\n");
      await buildFromModelfile(join(ctx, "Modelfile"), { store: h.store, tags: [parseRef(name)], contextDir: ctx, homeDir: h.dir });
      const c = await post(h.base, "/api/chat", { model: name, messages: [{ role: "system", content: "S" }, { role: "user", content: "hi" }], _debug_render_only: true });
      assert.equal(c.json._debug_info.rendered_template, "hi", name);
      const g = await post(h.base, "/api/generate", { model: name, prompt: "hi", stream: false, options: hot(1, { num_predict: 2 }) });
      assert.equal(g.json.eval_count, 2, name);
    }
  });
});
