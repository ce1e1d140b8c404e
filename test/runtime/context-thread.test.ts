/**
 * The context's own thread, in the engine `mf engine build` makes (mf's patch to node-llama-cpp's addon):
 * a context's decodes and samplings run in order on one native thread, and each sampling is queued right
 * behind its decode, without a round trip through JavaScript. Answers must be token for token those of
 * node-llama-cpp as published, where libuv's pool runs each decode and each sampling as it is asked for
 * (NODE_LLAMA_CPP_CONTEXT_THREAD=off): greedy, seeded, with a repeat penalty, a grammar, probabilities,
 * and several slots decoding in one batch. Slots decoding together are checked on the bigram model, whose
 * peaked next token depends only on the last one: its answers do not move with the batch's make-up (which
 * varies with timing, and changes a random model's near-ties), so each slot must answer as it does alone.
 *
 * Posting back: a sampling queued behind its decode goes back to JavaScript with that decode, in one post
 * (one wake of the JS thread a step, which on a busy machine would otherwise take the CPU from the context's
 * thread between the two); NODE_LLAMA_CPP_RUNNER_COALESCE=off posts each job on its own.
 *
 * Decoding ahead (the patch's AddonDecodeAhead): while JavaScript handles a sampled token, the context's
 * thread decodes it for the next one; the answers must not change, whether the next batch claims it or a
 * stop leaves it to be removed.
 *
 * Runs only on a built engine (MF_ENGINE_DIR, or ~/.mf/engine; `.ci/run` builds one); otherwise it says
 * that it could not run.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type LogprobEntry, runGeneration } from "../../runtime/engine/generation.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel } from "../../runtime/engine/types.js";
import { cpuEngine } from "./harness.js";
import { type Case, decodeAheadStats, FOUR_SLOTS, greedy, realModels, runnerStats, sampled } from "./sampling-cases.js";

const choice = await cpuEngine();

const CASES: Case[] = [
  { name: "greedy", prompt: "the weather today is", maxTokens: 24, sampling: greedy },
  { name: "seeded", prompt: "once upon a time", maxTokens: 48, sampling: sampled(7) },
  { name: "repeat penalty", prompt: "once upon a time", maxTokens: 48, sampling: { ...sampled(11), repeat: { penalty: 1.3, lastN: 16, presencePenalty: 0.2, frequencyPenalty: 0.1 } } },
  { name: "grammar", prompt: "answer:", maxTokens: 32, sampling: sampled(3), grammar: { kind: "gbnf", text: 'root ::= "{" [a-z ]+ "}"' } },
  { name: "probabilities", prompt: "the weather today is", maxTokens: 16, sampling: sampled(5), probabilities: true },
];

interface Answer {
  text: string;
  /** prompt and answer */
  tokens: number[];
  evalCount: number;
  doneReason: string;
  logprobs: LogprobEntry[];
}

async function answer(m: EngineModel, c: Case): Promise<Answer> {
  let text = "";
  const logprobs: LogprobEntry[] = [];
  const r = await runGeneration(
    m,
    {
      prompt: m.tokenize(c.prompt),
      maxTokens: c.maxTokens,
      stop: [],
      sampling: c.sampling,
      grammar: c.grammar,
      logprobs: c.probabilities ? { top: 3, sink: (e) => logprobs.push(e) } : undefined,
    },
    (t) => (text += t),
  );
  return { text, tokens: r.tokens, evalCount: r.evalCount, doneReason: r.doneReason, logprobs };
}

describe("the context's own thread: decodes and samplings in order, each sampling queued behind its decode", { concurrency: false }, () => {
  if (choice.kind !== "built") {
    it("answers token for token as node-llama-cpp as published", { skip: `no built engine for this machine (${choice.description}): the context-thread checks could not run` }, () => {});
    return;
  }
  const models = realModels();
  after(() => {
    delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
  });

  /**
   * A model whose contexts run their jobs on their own thread ("on"), on it without decoding ahead
   * ("no-ahead"), or on libuv's pool ("off").
   */
  async function load(mode: "on" | "no-ahead" | "off", slots: number, path = models.tiny): Promise<EngineModel> {
    if (mode === "off") process.env.NODE_LLAMA_CPP_CONTEXT_THREAD = "off";
    if (mode === "no-ahead") process.env.NODE_LLAMA_CPP_DECODE_AHEAD = "off";
    try {
      // node-llama-cpp's batch queue, which these checks are about (mf's own step loop: step-loop.test.ts)
      const engine = createLlamaEngine({ engine: choice, threads: 2, stepLoop: false });
      models.engines.push(engine);
      return await engine.load({ modelPath: path, adapters: [], contextSize: 256, slots, threads: 2 });
    } finally {
      delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
      delete process.env.NODE_LLAMA_CPP_DECODE_AHEAD;
    }
  }

  it("one slot: greedy, seeded, repeat penalty, a grammar and probabilities answer as on libuv's pool", async () => {
    const on = await load("on", 1);
    const off = await load("off", 1);
    for (const c of CASES) {
      const a = await answer(on, c);
      const b = await answer(off, c);
      assert.ok(a.evalCount > 0, c.name);
      assert.deepEqual(a, b, c.name);
      if (c.probabilities) assert.equal(a.logprobs.length, a.evalCount, "a log-probability for each token");
      if (c.grammar) assert.match(a.text, /^\{[a-z ]+\}?$/, `${c.name}: the grammar held (${a.text})`);
    }
    // and again on the same slot, whose cache now holds a prefix of the prompt
    assert.deepEqual(await answer(on, CASES[1]!), await answer(off, CASES[1]!), "a reused prefix cache");
  });

  it("four slots generating at once, each sampling queued behind the decode of their shared batch, and their next batch decoded ahead, answer each as alone and as on libuv's pool", async () => {
    const on = await load("on", 4, models.bigram);
    const off = await load("off", 4, models.bigram);
    const cases = FOUR_SLOTS;
    const alone: Answer[] = [];
    for (const c of cases) alone.push(await answer(on, c));
    const chains = new Set(alone.map((a) => a.text));
    assert.equal(chains.size, cases.length, `the slots' answers differ from one another: ${[...chains].join(" | ")}`);
    const before = decodeAheadStats(on);
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await Promise.all(cases.map((c) => answer(on, c))), alone, `round ${round}: at once, as alone`);
    }
    // the slots' batches were decoded ahead too, one token a slot, and used: answers as alone all the same
    const together = decodeAheadStats(on);
    assert.ok(together.claimed - before.claimed >= 10, `batches of several slots decoded ahead and claimed: ${JSON.stringify({ before, together })}`);
    assert.deepEqual(await Promise.all(cases.map((c) => answer(off, c))), alone, "on libuv's pool, at once");
  });

  it("a sampling goes back to JavaScript with the decode it was queued behind, in one post a step, in mf's step loop and in node-llama-cpp's batch queue, and the answers are those of one post a job", async () => {
    const engines: Engine[] = [];
    const loadWith = async (coalesce: boolean, stepLoop: boolean, slots: number) => {
      if (!coalesce) process.env.NODE_LLAMA_CPP_RUNNER_COALESCE = "off";
      try {
        const engine = createLlamaEngine({ engine: choice, threads: 2, stepLoop });
        engines.push(engine);
        return await engine.load({ modelPath: models.bigram, adapters: [], contextSize: 256, slots, threads: 2 });
      } finally {
        delete process.env.NODE_LLAMA_CPP_RUNNER_COALESCE;
      }
    };
    const disposeAll = async () => {
      for (const e of engines.splice(0)) await e.dispose();
    };
    try {
      for (const stepLoop of [true, false]) {
        await disposeAll();
        const together = await loadWith(true, stepLoop, 4);
        const apart = await loadWith(false, stepLoop, 4);
        const run = async (m: EngineModel, cases: readonly Case[]) => {
          const before = runnerStats(m);
          const answers = await Promise.all(cases.map((c) => answer(m, c)));
          const now = runnerStats(m);
          return { answers, jobs: now.jobs - before.jobs, posts: now.posts - before.posts, tokens: answers.reduce((n, a) => n + a.evalCount, 0) };
        };
        for (const cases of [FOUR_SLOTS.slice(0, 1), FOUR_SLOTS]) {
          const label = `${stepLoop ? "step loop" : "batch queue"}, ${cases.length} slot${cases.length > 1 ? "s" : ""}`;
          const a = await run(together, cases);
          const b = await run(apart, cases);
          assert.deepEqual(a.answers, b.answers, `${label}: the same answers`);
          assert.equal(b.posts, b.jobs, `${label}: with NODE_LLAMA_CPP_RUNNER_COALESCE=off, a post a job`);
          // a step is a decode and a sampling for each slot in it: the samplings go back with their decode, in
          // one post a decode (node-llama-cpp's queue samples some after the decode instead: a prompt's end)
          const decodes = a.jobs - a.tokens;
          assert.ok(decodes >= Math.max(...cases.map((c) => c.maxTokens)) && decodes <= a.tokens + cases.length, `${label}: a decode a step (${JSON.stringify(a)})`);
          assert.ok(a.posts >= decodes && a.posts <= Math.ceil(decodes * 1.3) + 2, `${label}: a post for a decode and the samplings behind it (${a.posts} posts for ${decodes} decodes and ${a.tokens} samplings)`);
        }
      }
    } finally {
      await disposeAll();
    }
  });

  it("decoding each sampled token ahead: every one is claimed by the next batch, none past the limit, and one left by a stop is removed before the slot is used again", async () => {
    const on = await load("on", 1);
    const plain = await load("no-ahead", 1);
    // to the limit: each token but the last was decoded while its text was handled, and used
    const c = CASES[1]!;
    const one = await answer(on, c);
    assert.deepEqual(one, await answer(plain, c), "the same answer");
    const first = decodeAheadStats(on);
    assert.deepEqual(first, { ran: c.maxTokens - 1, claimed: c.maxTokens - 1, removed: 0 }, "every token but the last decoded ahead, and each claimed");
    assert.deepEqual(decodeAheadStats(plain), { ran: 0, claimed: 0, removed: 0 }, "NODE_LLAMA_CPP_DECODE_AHEAD=off decodes nothing ahead");

    // stopped by a stop sequence: the token after it was decoded ahead and nobody asks for it
    const full = await answer(plain, { ...c, maxTokens: 40 });
    const stopAt = full.text.slice(12, 16);
    const stopped = async (m: EngineModel) => {
      let text = "";
      const r = await runGeneration(m, { prompt: m.tokenize(c.prompt), maxTokens: 40, stop: [stopAt], sampling: c.sampling }, (t) => (text += t));
      return { text, tokens: r.tokens, doneReason: r.doneReason, stopSequence: r.stopSequence };
    };
    const a = await stopped(on);
    assert.deepEqual(a, await stopped(plain), "the same answer, cut at the stop sequence");
    assert.equal(a.stopSequence, stopAt);
    const afterStop = decodeAheadStats(on);
    assert.equal(afterStop.ran - afterStop.claimed, 1, "one token decoded ahead, past the stop, not claimed");
    assert.equal(afterStop.removed, 0, "and still in the slot's cache until the slot is used again");

    // the next prompt shares the stopped answer's prefix: the slot's cache is reused, without that token
    const next: Case = { name: "prefix reused", prompt: c.prompt + a.text, maxTokens: 24, sampling: greedy };
    assert.deepEqual(await answer(on, next), await answer(plain, next), "a prompt reusing the cache answers as without decoding ahead");
    assert.equal(decodeAheadStats(on).removed, 1, "the token decoded past the stop was removed first");
  });
});
