/**
 * logprobs / top_logprobs on /api/generate, /api/chat and /v1/chat/completions (the `openai` client),
 * with the real engine: one entry per generated token, natural-log probabilities of the distribution the
 * sampler left (after temperature, top-k, top-p), the top alternatives most probable first.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => h?.close());

interface Entry { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number; bytes: number[] }[] }

function checkEntries(entries: Entry[], count: number, top: number): void {
  assert.equal(entries.length, count);
  for (const e of entries) {
    assert.ok(e.logprob <= 0 && Number.isFinite(e.logprob), String(e.logprob));
    assert.deepEqual(e.bytes, [...Buffer.from(e.token)]);
    assert.equal(e.top_logprobs.length, top);
    for (let i = 1; i < e.top_logprobs.length; i++) assert.ok(e.top_logprobs[i - 1]!.logprob >= e.top_logprobs[i]!.logprob);
    // the sampled token is never more probable than the most probable one
    if (top) assert.ok(e.logprob <= e.top_logprobs[0]!.logprob + 1e-9);
  }
}

describe("logprobs", { concurrency: false }, () => {
  const options = { seed: 9, num_predict: 6, temperature: 1, top_k: 0, top_p: 1 };

  test("/api/generate: an entry per token, whole and streamed", async () => {
    const r = await post(h.base, "/api/generate", { model: "chat", prompt: "hi", stream: false, logprobs: true, top_logprobs: 3, options });
    assert.equal(r.status, 200, r.text);
    checkEntries(r.json.logprobs, r.json.eval_count, 3);
    const s = await post(h.base, "/api/generate", { model: "chat", prompt: "hi", logprobs: true, top_logprobs: 3, options });
    const streamed = s.lines.flatMap((l) => l.logprobs ?? []);
    assert.deepEqual(streamed, r.json.logprobs);
    const none = await post(h.base, "/api/generate", { model: "chat", prompt: "hi", stream: false, options });
    assert.equal(none.json.logprobs, undefined);
  });

  test("/api/chat: logprobs without alternatives; a bad top_logprobs is a 400", async () => {
    const r = await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "user", content: "hi" }], stream: false, logprobs: true, options });
    checkEntries(r.json.logprobs, r.json.eval_count, 0);
    const bad = await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "user", content: "hi" }], logprobs: true, top_logprobs: 99 });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /top_logprobs/);
  });

  test("/v1/chat/completions through the openai client: choices[0].logprobs.content", async () => {
    const client = new OpenAI({ baseURL: `${h.base}/v1`, apiKey: "x", maxRetries: 0 });
    const r = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }], max_tokens: 5, seed: 3, logprobs: true, top_logprobs: 2 });
    checkEntries(r.choices[0]!.logprobs!.content as Entry[], r.usage!.completion_tokens, 2);
    const s = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "hi" }], max_tokens: 5, seed: 3, logprobs: true, top_logprobs: 2, stream: true });
    const entries: Entry[] = [];
    for await (const c of s) entries.push(...((c.choices[0]?.logprobs?.content ?? []) as Entry[]));
    assert.deepEqual(entries, r.choices[0]!.logprobs!.content);
  });
});
