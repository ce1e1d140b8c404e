/** grammar/template's execution budget alone (the server side is in test/runtime/bad-input.test.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TemplateBudget, TemplateLimitError, parseTemplate } from "../../../grammar/template/index.js";

const limitOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof TemplateLimitError, String(e));
    return e;
  }
  return assert.fail("no limit reached");
};

test("steps: nodes, iterations and calls count; past the limit a positioned TemplateLimitError", () => {
  const b = new TemplateBudget({ steps: 1000 });
  assert.equal(parseTemplate("{{range 10}}{{.}}{{end}}").execute({}, { budget: b }), "0123456789");
  assert.equal(b.steps, 21);
  const e = limitOf(() => parseTemplate("ok\n  {{range 100000000}}{{end}}").execute({}, { budget: new TemplateBudget({ steps: 1000 }) }));
  assert.equal(e.limit, "steps");
  assert.equal(e.message, "template: 2:3: execution budget exceeded: more than 1000 steps");
  // shared by the executions of one request
  const shared = new TemplateBudget({ steps: 50 });
  const t = parseTemplate("{{range 20}}{{end}}");
  t.execute({}, { budget: shared });
  t.execute({}, { budget: shared });
  assert.equal(limitOf(() => t.execute({}, { budget: shared })).limit, "steps");
});

test("output: printed text and strings returned by functions are held to the limit", () => {
  const small = () => new TemplateBudget({ outputChars: 1000 });
  assert.equal(limitOf(() => parseTemplate("{{range 1000}}xx{{end}}").execute({}, { budget: small() })).limit, "output");
  assert.equal(limitOf(() => parseTemplate(`{{$x := "xx"}}{{range 20}}{{$x = print $x $x}}{{end}}`).execute({}, { budget: small() })).limit, "output");
  assert.equal(limitOf(() => parseTemplate(`{{printf "%900d%900d" 1 2}}`).execute({}, { budget: small() })).limit, "output");
  assert.equal(parseTemplate(`{{printf "%900d" 1 | len}}`).execute({}, { budget: small() }), "900");
});

test("time: active work is limited", () => {
  const e = limitOf(() => parseTemplate("{{range 1000000000}}{{end}}").execute({}, { budget: new TemplateBudget({ timeMs: 20, steps: Infinity }) }));
  assert.equal(e.limit, "time");
});

test("executeAsync yields to the event loop between slices; execute runs straight through", async () => {
  const t = parseTemplate("{{range 300000}}{{end}}done");
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  try {
    const out = await t.executeAsync({}, { budget: new TemplateBudget({ sliceMs: 1 }) });
    assert.equal(out, "done");
    assert.ok(ticks > 0, "timers ran while the template executed");
    const before = ticks;
    t.execute({}, { budget: new TemplateBudget({ sliceMs: 1 }) });
    assert.equal(ticks, before);
  } finally {
    clearInterval(timer);
  }
});
