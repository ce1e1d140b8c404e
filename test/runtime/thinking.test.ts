/**
 * Thinking on the native API with the real engine: a template that prints `.Thinking` between <think>
 * tags gives the model the capability; its thinking goes to `message.thinking` / `thinking`, streamed in
 * chunks of its own; `think: false` keeps it out; `think: true` on a model without it is a 400.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Harness, post } from "./harness.js";
import { startCompatHarness } from "./compat-harness.js";

let h: Harness;
before(async () => {
  h = await startCompatHarness();
});
after(async () => h?.close());

const opts = { seed: 5, num_predict: 6, temperature: 0.9 };

describe("thinking on /api/chat and /api/generate", { concurrency: false }, () => {
  test("capabilities list thinking for a template that prints .Thinking between tags", async () => {
    assert.deepEqual((await post(h.base, "/api/show", { model: "thinker" })).json.capabilities, ["completion", "thinking"]);
    assert.deepEqual((await post(h.base, "/api/show", { model: "chat" })).json.capabilities, ["completion"]);
    const tags = (await fetch(`${h.base}/api/tags`).then((r) => r.json())) as { models: { name: string; capabilities: string[] }[] };
    assert.deepEqual(tags.models.find((m) => m.name === "thinker:latest" || m.name === "thinker")!.capabilities, ["completion", "thinking"]);
  });

  test("think omitted on a thinking model: it thinks, and the thinking is separated (Ollama's default)", async () => {
    const msgs = [{ role: "user", content: "why?" }];
    const dbg = await post(h.base, "/api/chat", { model: "thinker", messages: msgs, _debug_render_only: true });
    assert.match(dbg.json._debug_info.rendered_template, /<\|im_start\|>assistant\n<think>\n$/);
    const whole = await post(h.base, "/api/chat", { model: "thinker", messages: msgs, stream: false, options: opts });
    assert.ok(whole.json.message.thinking.length > 0, JSON.stringify(whole.json.message));
    assert.equal(whole.json.message.content, "");
    const streamed = await post(h.base, "/api/chat", { model: "thinker", messages: msgs, think: true, options: opts });
    const parts = streamed.lines.filter((l) => !l.done);
    assert.ok(parts.every((l) => l.message.content === "" && typeof l.message.thinking === "string"));
    assert.equal(parts.map((l) => l.message.thinking).join(""), whole.json.message.thinking);
  });

  test("think: false renders no thinking block and separates nothing", async () => {
    const r = await post(h.base, "/api/chat", { model: "thinker", messages: [{ role: "user", content: "why?" }], think: false, stream: false, options: opts });
    assert.equal(r.json.message.thinking, undefined);
    assert.ok(r.json.message.content.length > 0);
  });

  test("/api/generate separates thinking into `thinking`", async () => {
    const r = await post(h.base, "/api/generate", { model: "thinker", prompt: "why?", stream: false, options: opts });
    assert.ok(r.json.thinking.length > 0, JSON.stringify(r.json));
    assert.equal(r.json.response, "");
    const s = await post(h.base, "/api/generate", { model: "thinker", prompt: "why?", options: opts });
    assert.equal(s.lines.filter((l) => !l.done).map((l) => l.thinking ?? "").join(""), r.json.thinking);
  });

  test("think: true on a model without the capability is a 400, as in Ollama", async () => {
    for (const path of ["/api/chat", "/api/generate"]) {
      const body = path === "/api/chat" ? { messages: [{ role: "user", content: "x" }] } : { prompt: "x" };
      const r = await post(h.base, path, { model: "chat", think: true, ...body });
      assert.equal(r.status, 400, path);
      assert.equal(r.json.error, '"chat" does not support thinking');
    }
  });
});
