/**
 * Bad input over real HTTP, the real engine on the generated tiny model: a template past its budget, a
 * context of token ids the model does not have, unknown option names by the thousand. Each gets a 4xx
 * (never a 500), leaves the server answering others, and costs bounded memory and log lines; a client's
 * error is logged as such, without a stack.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
/** the server's log, as pino JSON lines */
const logs: string[] = [];
before(async () => {
  h = await startHarness({ logger: { level: "info", stream: { write: (line: string) => void logs.push(line) } } });
});
after(async () => h?.close());

const LOOP = "{{range 100000000}}{{end}}done";

describe("template budget", { concurrency: false }, () => {
  test("a looping template gets a 400, and GET / keeps answering while it runs", async () => {
    const t0 = performance.now();
    let settled = false;
    let took = 0;
    const looping = post(h.base, "/api/generate", { model: "chat", prompt: "x", template: LOOP, _debug_render_only: true }).then((r) => {
      settled = true;
      took = performance.now() - t0;
      return r;
    });
    // GET / one after the other for as long as the looping request is in flight
    const gets: number[] = [];
    while (!settled) {
      const s = performance.now();
      const r = await fetch(h.base + "/");
      assert.equal(await r.text(), "Ollama is running");
      if (!settled) gets.push(performance.now() - s);
    }
    const r = await looping;
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, /^template: 1:1: execution budget exceeded: more than (10000000 steps|1000 ms of work)$/);
    // the render yields: many GETs were answered before it, typically in a small part of its time (the
    // median, not the slowest: on a loaded 2-core machine one GET may wait out another process's slice)
    assert.ok(gets.length >= 20, `only ${gets.length} GET / answered while the template ran`);
    const median = [...gets].sort((a, b) => a - b)[Math.floor(gets.length / 2)]!;
    assert.ok(median * 5 < took, `median GET / ${median.toFixed(1)} ms, the template request ${took.toFixed(1)} ms`);
  });

  test("a template stored through /api/create gets the same 400 on every request", async () => {
    const c = await post(h.base, "/api/create", { model: "looper", from: "chat", template: LOOP, stream: false });
    assert.equal(c.status, 200, c.text);
    const g = await post(h.base, "/api/generate", { model: "looper", prompt: "hi", stream: false });
    assert.equal(g.status, 400, g.text);
    assert.match(g.json.error, /execution budget exceeded/);
    const streamed = await post(h.base, "/api/chat", { model: "looper", messages: [{ role: "user", content: "hi" }] });
    assert.equal(streamed.status, 400, streamed.text);
    assert.match(streamed.json.error, /execution budget exceeded/);
  });

  test("output growing past the limit is a 400, not a 500 Invalid string length", async () => {
    const render = (template: string) => post(h.base, "/api/generate", { model: "chat", prompt: "x", template, _debug_render_only: true });
    const cases = [
      // text in a loop
      `{{range 100000000}}${"x".repeat(1024)}{{end}}`,
      // a string doubled by each step, never printed
      `{{$x := "xxxxxxxxxxxxxxxx"}}{{range 40}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`,
      // one printf call of widths (a million each)
      `{{printf "${"%1000000d".repeat(40)}" ${"1 ".repeat(40)}}}`,
    ];
    for (const template of cases) {
      const r = await render(template);
      assert.equal(r.status, 400, `${template.slice(0, 60)}: ${r.text.slice(0, 200)}`);
      assert.match(r.json.error, /execution budget exceeded: output longer than 33554432 characters/);
    }
    assert.equal((await fetch(h.base + "/")).status, 200);
  });
});

describe("bad input is a 4xx", { concurrency: false }, () => {
  test("a context of token ids outside the vocabulary: 400, streamed or not", async () => {
    for (const stream of [false, true]) {
      const r = await post(h.base, "/api/generate", { model: "chat", prompt: "x", context: [1, 999999], stream, options: { num_predict: 2 } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, "invalid context: token 999999 is not in the model's vocabulary (0 to 511); send back the context of an answer of this model");
    }
    const ok = await post(h.base, "/api/generate", { model: "chat", prompt: "x", context: [1, 511], stream: false, options: { num_predict: 2 } });
    assert.equal(ok.status, 200, ok.text);
  });
});

describe("unknown option names", { concurrency: false }, () => {
  test("thousands of distinct names: each request answers, the warnings logged stay few and short", async () => {
    const warned = () => logs.filter((l) => /unknown option/.test(l));
    const before = warned().length;
    for (let round = 0; round < 3; round++) {
      const options: Record<string, number> = {};
      for (let i = 0; i < 2000; i++) options[`no_such_option_${round}_${i}`] = 1;
      options[`long_${round}_${"y".repeat(100_000)}`] = 1;
      const r = await post(h.base, "/api/generate", { model: "chat", prompt: "x", _debug_render_only: true, options });
      assert.equal(r.status, 200, r.text.slice(0, 200));
    }
    const lines = warned().slice(before);
    assert.ok(lines.length > 0 && lines.length <= 20, `${lines.length} warning lines for 6003 names`);
    for (const l of lines) assert.ok(l.length < 600, `a line of ${l.length} characters`);
  });
});

describe("logging", { concurrency: false }, () => {
  const since = (n: number) => logs.slice(n).map((l) => JSON.parse(l) as { level: number; msg: string; statusCode?: number; err?: { stack?: string } });

  test("a client's error (404 unknown model, 400) is logged at info in one line, without a stack", async () => {
    const n = logs.length;
    assert.equal((await post(h.base, "/api/generate", { model: "nope", prompt: "x" })).status, 404);
    assert.equal((await post(h.base, "/api/chat", { model: "chat", messages: "no" })).status, 400);
    const lines = since(n);
    assert.deepEqual(lines.filter((l) => l.level >= 40), []);
    assert.ok(!lines.some((l) => l.err?.stack), "no stack trace");
    const refused = lines.filter((l) => l.msg === "request refused");
    assert.deepEqual(refused.map((l) => [l.level, l.statusCode]), [[30, 404], [30, 400]]);
  });

  test("a server's error (500) is still logged at error level with its stack", async () => {
    const n = logs.length;
    const r = await post(h.base, "/api/generate", { model: "chat", prompt: "x", template: "{{ .Nope.X }}", _debug_render_only: true });
    assert.equal(r.status, 500);
    const errors = since(n).filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.err?.stack ?? "", /nil pointer evaluating/);
  });
});
