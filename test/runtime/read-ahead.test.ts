/**
 * Read-ahead on the real engine (node-llama-cpp, generated tiny model, one thread): with a CPU free beside
 * the decode's threads, the next token is decoded while the consumer handles the last one. The answers
 * must be exactly those without read-ahead, and no token is decoded past the caller's limit.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { runGeneration } from "../../runtime/engine/generation.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel, SamplingOptions } from "../../runtime/engine/types.js";

/** Resolves to "token" when `p` settles before the event loop turns (no native decode ran for it), else "waited". */
async function beforeNextTurn<T>(p: Promise<T>): Promise<"token" | "waited"> {
  const turn = new Promise<"waited">((res) => setImmediate(() => res("waited")));
  return Promise.race([p.then(() => "token" as const), turn]);
}

describe("read-ahead: the next token is decoded while the consumer holds this one", { concurrency: false }, () => {
  let dir: string;
  const engines: Engine[] = [];
  /** 2 CPUs usable, 1 decode thread: reads ahead */
  let ahead: EngineModel;
  /** 1 CPU usable: never reads ahead */
  let serial: EngineModel;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mf-read-ahead-"));
    const modelPath = join(dir, "tiny.gguf");
    await writeLlamaGguf(modelPath, TINY);
    const load = async (cpus: number) => {
      const ids = Array.from({ length: cpus }, (_, i) => i);
      const engine = createLlamaEngine({ threads: 1, loadIntervalMs: 0, cpu: { online: cpus, allowed: ids, parallelism: cpus } });
      engines.push(engine);
      return engine.load({ modelPath, adapters: [], contextSize: 256, slots: 1 });
    };
    ahead = await load(2);
    serial = await load(1);
  });
  after(async () => {
    for (const e of engines) await e.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test("with a CPU to spare, the next token is ready before the consumer asks; with none it is decoded on demand", async () => {
    for (const [m, expected] of [[ahead, "token"], [serial, "waited"]] as const) {
      const gen = m.evaluate(m.tokenize("once upon a time"), { sampling: { temperature: 0, topK: 40, topP: 1, minP: 0, seed: 1 } });
      assert.equal((await gen.next()).done, false);
      await sleep(500); // the consumer holds the token; a tiny-model decode takes about a millisecond
      assert.equal(await beforeNextTurn(gen.next()), expected);
      await gen.return();
    }
  });

  test("nothing is decoded past the caller's limit", async () => {
    const gen = ahead.evaluate(ahead.tokenize("once upon a time"), { sampling: { temperature: 0, topK: 40, topP: 1, minP: 0, seed: 1 }, maxTokens: 3 });
    for (let i = 0; i < 3; i++) assert.equal((await gen.next()).done, false);
    await sleep(500);
    assert.equal(await beforeNextTurn(gen.next()), "waited");
    await gen.return();
  });

  test("answers are token for token those without read-ahead: greedy, seeded, num_predict, stop strings, a reused cache", async () => {
    const sampled = (seed: number): SamplingOptions => ({ temperature: 1.2, topK: 40, topP: 0.95, minP: 0, seed });
    const greedy: SamplingOptions = { temperature: 0, topK: 40, topP: 1, minP: 0, seed: 0 };
    const cases = [
      { prompt: "the weather today is", maxTokens: 17, stop: [], sampling: greedy },
      { prompt: "the weather today is", maxTokens: 40, stop: [], sampling: sampled(5) },
      // the same prefix again: the slot's cache (with a token decoded ahead before) is reused
      { prompt: "the weather today is sunny", maxTokens: 23, stop: [], sampling: sampled(9) },
      { prompt: "once upon a time", maxTokens: 64, stop: ["e"], sampling: sampled(3) },
      { prompt: "once upon a time", maxTokens: 1, stop: [], sampling: sampled(3) },
    ];
    for (const c of cases) {
      const run = async (m: EngineModel) => {
        let text = "";
        const r = await runGeneration(m, { prompt: m.tokenize(c.prompt), maxTokens: c.maxTokens, stop: c.stop, sampling: c.sampling }, (t) => (text += t));
        return { text, tokens: r.tokens, evalCount: r.evalCount, doneReason: r.doneReason, stop: r.stopSequence };
      };
      const a = await run(ahead);
      const s = await run(serial);
      assert.deepEqual(a, s, `${c.prompt} (num_predict ${c.maxTokens}, stop ${JSON.stringify(c.stop)})`);
      if (a.doneReason === "length") assert.equal(a.evalCount, c.maxTokens);
    }
  });

  test("a consumer that stops early frees the slot as soon as its return() resolves", async () => {
    const gen = ahead.evaluate(ahead.tokenize("abc"), { sampling: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0, seed: 2 } });
    await gen.next();
    await gen.return(); // a decode ahead is in flight: return() waits for it
    const again = ahead.evaluate(ahead.tokenize("abc"), { sampling: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0, seed: 2 } });
    assert.equal((await again.next()).done, false);
    await again.return();
  });
});
