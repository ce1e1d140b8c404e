/**
 * mf's own generation loop (step-batch.ts, and `_stepSequences` in mf's patch to node-llama-cpp): answers
 * without a grammar, probabilities or a draft step there, one call a step for every slot generating
 * together, instead of node-llama-cpp's batch queue. On the real engine, the answers must be token for
 * token those of the queue (`stepLoop: false`): greedy, seeded, with a repeat penalty, on a reused prefix,
 * past the end of a small context (where node-llama-cpp takes over and shifts it), and four slots at once,
 * which must share their steps. It runs on node-llama-cpp's prebuilt binary, whose samplings wait for their
 * decode in JavaScript, and on the built engine when there is one, whose samplings queue behind the decode.
 */
import assert from "node:assert/strict";
import { afterEach, describe, it, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { runGeneration } from "../../runtime/engine/generation.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import { StepBatch } from "../../runtime/engine/step-batch.js";
import type { EngineModel } from "../../runtime/engine/types.js";
import { type Case, decodeAheadStats, FOUR_SLOTS, greedy, realBinaries, realModels, sampled } from "./sampling-cases.js";

describe("step batch: what the slots ask within one turn goes in one step", () => {
  test("items asked in the same turn run together, in sequence order, and each gets its own token", async () => {
    const runs: number[][] = [];
    const batch = new StepBatch<{ order: number; size: number; token: number }>(async (items) => {
      runs.push(items.map((i) => i.order));
      return items.map((i) => i.token * 10);
    });
    const got = await Promise.all([batch.step({ order: 2, size: 1, token: 2 }), batch.step({ order: 0, size: 1, token: 5 }), batch.step({ order: 1, size: 1, token: 7 })]);
    assert.deepEqual(got, [20, 50, 70]);
    assert.deepEqual(runs, [[0, 1, 2]]);
    // a later turn is a later step
    assert.equal(await batch.step({ order: 3, size: 1, token: 1 }), 10);
    assert.deepEqual(runs, [[0, 1, 2], [3]]);
  });

  test("a step carries at most the batch size: what does not fit goes in the next step, an item too large alone", async () => {
    const runs: number[][] = [];
    const batch = new StepBatch<{ order: number; size: number }>(async (items) => {
      runs.push(items.map((i) => i.size));
      return items.map((i) => i.order);
    }, 8);
    const got = await Promise.all([batch.step({ order: 0, size: 1 }), batch.step({ order: 1, size: 6 }), batch.step({ order: 2, size: 5 }), batch.step({ order: 3, size: 1 })]);
    assert.deepEqual(got, [0, 1, 2, 3]);
    assert.deepEqual(runs, [[1, 6], [5, 1]]);
    assert.equal(await batch.step({ order: 4, size: 20 }), 4);
    assert.deepEqual(runs.at(-1), [20]);
  });

  test("a failed step fails every item in it, and the next step runs", async () => {
    let fail = true;
    const batch = new StepBatch<{ order: number; size: number }>(async (items) => {
      if (fail) throw new Error("decode failed");
      return items.map(() => 1);
    });
    const r = await Promise.allSettled([batch.step({ order: 0, size: 1 }), batch.step({ order: 1, size: 1 })]);
    assert.deepEqual(r.map((x) => x.status), ["rejected", "rejected"]);
    assert.match(String((r[0] as PromiseRejectedResult).reason), /decode failed/);
    fail = false;
    assert.equal(await batch.step({ order: 0, size: 1 }), 1);
  });

  test("a step that throws at once, or returns too few tokens, rejects instead of hanging", async () => {
    const throws = new StepBatch<{ order: number; size: number }>(() => {
      throw new Error("disposed");
    });
    await assert.rejects(throws.step({ order: 0, size: 1 }), /disposed/);
    const short = new StepBatch<{ order: number; size: number }>(async () => [1]);
    const r = await Promise.allSettled([short.step({ order: 0, size: 1 }), short.step({ order: 1, size: 1 })]);
    assert.deepEqual(r.map((x) => x.status), ["fulfilled", "rejected"]);
  });
});

const CASES: Case[] = [
  { name: "greedy", prompt: "the weather today is", maxTokens: 24, sampling: greedy },
  { name: "seeded", prompt: "once upon a time", maxTokens: 48, sampling: sampled(7) },
  { name: "repeat penalty", prompt: "once upon a time", maxTokens: 48, sampling: { ...sampled(11), repeat: { penalty: 1.3, lastN: 16, presencePenalty: 0.2, frequencyPenalty: 0.1 } } },
];

async function answer(m: EngineModel, c: Case): Promise<{ text: string; tokens: number[]; evalCount: number; doneReason: string }> {
  let text = "";
  const r = await runGeneration(m, { prompt: m.tokenize(c.prompt), maxTokens: c.maxTokens, stop: [], sampling: c.sampling }, (t) => (text += t));
  return { text, tokens: r.tokens, evalCount: r.evalCount, doneReason: r.doneReason };
}

/**
 * counts the sequences of each `_stepSequences` call on `m`'s context (a private of mf's patch), and into
 * `tokens` the tokens each decoded
 */
function countSteps(m: EngineModel, tokens: number[] = []): number[] {
  const ctx = (m as unknown as { context: { _stepSequences(items: { tokens: readonly number[] }[]): Promise<number[]> } }).context;
  const sizes: number[] = [];
  const step = ctx._stepSequences.bind(ctx);
  ctx._stepSequences = (items) => {
    sizes.push(items.length);
    tokens.push(items.reduce((n, i) => n + i.tokens.length, 0));
    return step(items);
  };
  return sizes;
}

/**
 * Watches the native samplings of `m`'s context (behind the patch's gate, `_nativeSampleToken`), each held
 * 2 ms before it starts so that samplings started together would overlap: counts those after the first
 * since a decode (`after`), and those of them that started before that first one had ended (`early`).
 */
function watchSamplings(m: EngineModel): { decodes: number; after: number; early: number } {
  type Native = (...args: unknown[]) => Promise<unknown>;
  const ctx = (m as unknown as { context: { _ctx: { _nativeSampleToken: Native; _nativeDecodeBatch: Native } } }).context._ctx;
  const sample = ctx._nativeSampleToken;
  const decode = ctx._nativeDecodeBatch;
  const seen = { decodes: 0, after: 0, early: 0 };
  let sinceDecode = 0;
  let firstEnded = true;
  ctx._nativeDecodeBatch = function (this: unknown, ...args) {
    seen.decodes++;
    sinceDecode = 0;
    firstEnded = false;
    return decode.apply(this, args);
  };
  ctx._nativeSampleToken = async function (this: unknown, ...args) {
    const n = sinceDecode++;
    if (n > 0) {
      seen.after++;
      if (!firstEnded) seen.early++;
    }
    await sleep(2);
    try {
      return await sample.apply(this, args);
    } finally {
      if (n === 0) firstEnded = true;
    }
  };
  return seen;
}

const binaries = await realBinaries();

for (const [label, choice] of binaries) {
  describe(`mf's step loop on ${label}: answers as node-llama-cpp's batch queue`, { concurrency: false }, () => {
    const models = realModels();
    // each test's engines go when it ends: node-llama-cpp listens for beforeExit once a live engine
    afterEach(async () => {
      for (const e of models.engines.splice(0)) await e.dispose();
    });
    async function load(stepLoop: boolean, slots: number, path = models.tiny, contextSize = 256, batchSize?: number): Promise<EngineModel> {
      const engine = createLlamaEngine({ engine: choice, threads: 1, stepLoop, loadIntervalMs: 0, measureThreads: false });
      models.engines.push(engine);
      return engine.load({ modelPath: path, adapters: [], contextSize, slots, threads: 1, batchSize });
    }

    it("one slot: greedy, seeded and with a repeat penalty, then on a reused prefix, token for token; one step a token", async () => {
      const loop = await load(true, 1);
      const queue = await load(false, 1);
      const sizes = countSteps(loop);
      let expected = 0;
      for (const c of CASES) {
        const a = await answer(loop, c);
        assert.ok(a.evalCount > 0, c.name);
        assert.deepEqual(a, await answer(queue, c), c.name);
        // the prompt is one step, with the first token sampled; each token after it is one more, and so is
        // the end-of-generation token of an answer that stopped on one
        expected += a.evalCount + (a.doneReason === "stop" ? 1 : 0);
      }
      assert.equal(sizes.length, expected, "one step for each token sampled");
      const first = await answer(loop, CASES[1]!);
      const reuse: Case = { name: "prefix reused", prompt: CASES[1]!.prompt + first.text, maxTokens: 24, sampling: greedy };
      assert.deepEqual(await answer(loop, reuse), await answer(queue, reuse), "a prompt that extends the slot's cache");
    });

    it("a prompt longer than the batch: node-llama-cpp's queue takes its start, the first step its end, token for token as the queue", async () => {
      const loop = await load(true, 2, models.tiny, 256, 16);
      const queue = await load(false, 2, models.tiny, 256, 16);
      const tokens: number[] = [];
      countSteps(loop, tokens);
      const c: Case = { name: "long prompt", prompt: "once upon a time there was a king who had three daughters, and the youngest was the fairest of them all, and", maxTokens: 20, sampling: sampled(3) };
      assert.ok(loop.tokenize(c.prompt).length > 16, "the prompt is longer than the batch");
      const a = await answer(loop, c);
      assert.deepEqual(a, await answer(queue, c));
      // a batch of 16, with room left for one token of the other slot
      assert.equal(tokens[0], 15, "the first step decodes the prompt's last 15 tokens");
      assert.ok(tokens.slice(1).every((n) => n === 1), "then one token a step");
    });

    it("past the end of a small context, node-llama-cpp takes over and shifts it: the answer goes on to its length", async () => {
      const loop = await load(true, 1, models.tiny, 64);
      const queue = await load(false, 1, models.tiny, 64);
      const c: Case = { name: "long", prompt: "once upon a time there was a king who had three daughters and", maxTokens: 100, sampling: greedy };
      const a = await answer(loop, c);
      assert.equal(a.evalCount, 100);
      assert.equal(a.doneReason, "length");
      assert.deepEqual(a, await answer(queue, c));
    });

    it("four slots at once answer each as alone and as through the queue, sharing their steps", async () => {
      const loop = await load(true, 4, models.bigram);
      const queue = await load(false, 4, models.bigram);
      const cases = FOUR_SLOTS;
      const alone = [];
      for (const c of cases) alone.push(await answer(loop, c));
      assert.equal(new Set(alone.map((a) => a.text)).size, cases.length, "the slots' answers differ from one another");
      const sizes = countSteps(loop);
      for (let round = 0; round < 3; round++) {
        assert.deepEqual(await Promise.all(cases.map((c) => answer(loop, c))), alone, `round ${round}: at once, as alone`);
      }
      assert.deepEqual(await Promise.all(cases.map((c) => answer(queue, c))), alone, "through the queue, at once");
      const shared = sizes.filter((n) => n === 4).length;
      // 17 tokens of each of the four, at the least, in steps of all four (3 rounds)
      assert.ok(shared >= 3 * 15, `steps of all four slots: ${shared} of ${sizes.length} (${sizes.join(",")})`);
    });

    if (!choice) {
      it("on libuv's pool, the first sampling after a decode runs alone (llama.cpp reorders the outputs in it), in the loop and through the queue", async () => {
        for (const stepLoop of [true, false]) {
          const m = await load(stepLoop, 4, models.bigram);
          const alone = [];
          for (const c of FOUR_SLOTS) alone.push(await answer(m, c));
          const seen = watchSamplings(m);
          for (let round = 0; round < 2; round++) {
            assert.deepEqual(await Promise.all(FOUR_SLOTS.map((c) => answer(m, c))), alone, `stepLoop ${stepLoop}, round ${round}: at once, as alone`);
          }
          assert.ok(seen.after > 2 * 15, `samplings after the first of a decode: ${JSON.stringify(seen)}`);
          assert.equal(seen.early, 0, `none started before the first had ended: ${JSON.stringify(seen)}`);
        }
      });
    }

    if (choice) {
      /** a model stepped in mf's loop at `threads` threads (default 1), on a machine of `cpus` CPUs */
      const onCpus = async (cpus: number, slots: number, path = models.tiny, threads = 1): Promise<EngineModel> => {
        const engine = createLlamaEngine({ engine: choice, threads, loadIntervalMs: 0, measureThreads: false, cpu: { online: cpus, parallelism: cpus } });
        models.engines.push(engine);
        return engine.load({ modelPath: path, adapters: [], contextSize: 256, slots, threads });
      };

      it("with a CPU of its own beside the decode's thread, each sampled token is decoded ahead and claimed by the next step, none past the limit; on a single CPU, none is; the answers are the same", async () => {
        const spare = await onCpus(4, 1);
        const none = await onCpus(1, 1);
        const c = CASES[1]!;
        const a = await answer(spare, c);
        assert.equal(a.evalCount, c.maxTokens, "the answer runs to its limit");
        assert.deepEqual(a, await answer(none, c), "the same answer without decoding ahead");
        assert.deepEqual(decodeAheadStats(spare), { ran: c.maxTokens - 1, claimed: c.maxTokens - 1, removed: 0 }, "every token but the last decoded ahead, and each claimed by the next step");
        assert.deepEqual(decodeAheadStats(none), { ran: 0, claimed: 0, removed: 0 }, "on a single CPU, nothing decoded ahead");

        // four slots stepping together: their shared batch is decoded ahead, one token a slot
        const four = await onCpus(8, 4, models.bigram);
        const alone = [];
        for (const f of FOUR_SLOTS) alone.push(await answer(four, f));
        const before = decodeAheadStats(four);
        assert.deepEqual(await Promise.all(FOUR_SLOTS.map((f) => answer(four, f))), alone, "at once, as alone");
        const after = decodeAheadStats(four);
        assert.ok(after.claimed - before.claimed >= 10, `steps of several slots decoded ahead and claimed: ${JSON.stringify({ before, after })}`);
      });

      it("where the decode's threads take every CPU, the one answer generating is decoded ahead, and answers generating together are not; the answers are the same", async () => {
        const full = await onCpus(2, 2, models.tiny, 2);
        const c = CASES[1]!;
        const a = await answer(full, c);
        assert.equal(a.evalCount, c.maxTokens, "the answer runs to its limit");
        assert.deepEqual(decodeAheadStats(full), { ran: c.maxTokens - 1, claimed: c.maxTokens - 1, removed: 0 }, "alone at 2 threads on 2 CPUs: every token but the last decoded ahead");
        const before = decodeAheadStats(full);
        const pair = await Promise.all([answer(full, c), answer(full, c)]);
        assert.deepEqual(pair, [a, a], "together, as alone");
        const after = decodeAheadStats(full);
        assert.ok(after.ran - before.ran <= 1, `two answers stepping together are not decoded ahead: ${JSON.stringify({ before, after })}`);
      });
    }

    it("a consumer that stops early frees its slot for the next answer, which answers as on a fresh model", async () => {
      const loop = await load(true, 1);
      const gen = loop.evaluate(loop.tokenize("once upon a time"), { sampling: greedy });
      for (let i = 0; i < 5; i++) assert.equal((await gen.next()).done, false);
      await gen.return();
      await sleep(10);
      const fresh = await load(true, 1);
      assert.deepEqual(await answer(loop, CASES[0]!), await answer(fresh, CASES[0]!));
    });
  });
}
