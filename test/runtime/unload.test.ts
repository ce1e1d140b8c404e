/**
 * An answer cut by an unload never looks finished, over real HTTP with the real engine. `mf stop`
 * (keep_alive 0) does not cut an answer, as Ollama's does not: the model is unloaded once the answer is
 * complete. An unload that does happen under a stream (a server shutting down past its grace period) ends
 * it with an `{"error"}` line, which the `ollama` client raises, instead of `done: true`.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
before(async () => {
  h = await startHarness();
});
after(async () => h?.close());

/** a long answer of the tiny model: this seed runs for hundreds of tokens before its end token */
const LONG = { seed: 15, temperature: 1.5, top_k: 0, top_p: 1, num_ctx: 2048, num_predict: 600 };

/** Streams a generation; calls `mid` after the third line; returns every line. */
async function stream(body: unknown, mid: () => unknown): Promise<any[]> {
  const res = await fetch(h.base + "/api/generate", { method: "POST", body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = "";
  let called = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
    if (!called && text.split("\n").length > 3) {
      called = true;
      await mid();
    }
  }
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

const loaded = async () => ((await (await fetch(h.base + "/api/ps")).json()) as { models: { name: string }[] }).models.map((m) => m.name);

test("mf stop (keep_alive 0) during a stream lets the answer finish, then unloads the model", async () => {
  const full = await post(h.base, "/api/generate", { model: "chat", prompt: "tell me a story", stream: false, options: LONG });
  let stopped: any;
  const lines = await stream({ model: "chat", prompt: "tell me a story", options: LONG }, async () => {
    stopped = (await post(h.base, "/api/generate", { model: "chat", keep_alive: 0 })).json;
  });
  assert.equal(stopped.done_reason, "unload");
  const last = lines.at(-1);
  assert.equal(last.done, true);
  assert.equal(last.eval_count, full.json.eval_count, "the whole answer");
  assert.equal(lines.map((l) => l.response).join(""), full.json.response);
  assert.deepEqual(await loaded(), []);
});

test("an unload under a stream (shutdown past its grace) ends it with an error line; the ollama client raises it", async () => {
  const client = new Ollama({ host: h.base });
  let parts = 0;
  let release!: () => void;
  const clientStarted = new Promise<void>((r) => (release = r));
  // what the client's iteration ends with: undefined when it ends normally, else what it throws
  const viaClient = (async () => {
    for await (const part of await client.generate({ model: "chat", prompt: "once more", options: LONG, stream: true })) {
      assert.equal(part.done, false);
      if (++parts === 3) release();
    }
  })().then(
    () => undefined,
    (e: unknown) => e,
  );
  const lines = await stream({ model: "chat", prompt: "tell me a story", options: LONG }, async () => {
    await clientStarted;
    // what `mf serve` does when its grace period is over: unload, whatever is running
    void h.app.shutdown(0);
  });
  const last = lines.at(-1);
  assert.deepEqual(Object.keys(last), ["error"]);
  assert.match(last.error, /the model was unloaded before the answer was complete/);
  assert.ok(!lines.some((l) => l.done === true), "no line says done");
  const raised = await viaClient;
  assert.ok(raised instanceof Error, "the ollama client raised the error line");
  assert.match(raised.message, /the model was unloaded before the answer was complete/);
});
