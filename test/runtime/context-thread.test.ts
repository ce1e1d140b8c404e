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
 * Runs only on a built engine (MF_ENGINE_DIR, or ~/.mf/engine; `.ci/run` builds one); otherwise it says
 * that it could not run.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BIGRAM_TARGET, cachedFixture } from "../../fixtures/gguf/index.js";
import { type LogprobEntry, runGeneration } from "../../runtime/engine/generation.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel, EvaluateOptions, SamplingOptions } from "../../runtime/engine/types.js";
import { ROOT } from "../helpers/mf.js";
import { cpuEngine, tinyGguf } from "./harness.js";

const choice = await cpuEngine();

const greedy: SamplingOptions = { temperature: 0, topK: 40, topP: 1, minP: 0, seed: 0 };
const sampled = (seed: number): SamplingOptions => ({ temperature: 1.1, topK: 40, topP: 0.95, minP: 0, seed });

interface Case {
  name: string;
  prompt: string;
  maxTokens: number;
  sampling: SamplingOptions;
  grammar?: EvaluateOptions["grammar"];
  probabilities?: boolean;
}

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
  let modelPath: string;
  let bigramPath: string;
  const engines: Engine[] = [];
  before(async () => {
    modelPath = await tinyGguf();
    bigramPath = await cachedFixture(BIGRAM_TARGET, join(ROOT, ".mf-test-cache"));
  });
  after(async () => {
    delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
    for (const e of engines) await e.dispose();
  });

  /** a model whose contexts run their jobs on their own thread ("on"), or on libuv's pool ("off") */
  async function load(mode: "on" | "off", slots: number, path = modelPath): Promise<EngineModel> {
    if (mode === "off") process.env.NODE_LLAMA_CPP_CONTEXT_THREAD = "off";
    else delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
    try {
      const engine = createLlamaEngine({ engine: choice, threads: 2 });
      engines.push(engine);
      return await engine.load({ modelPath: path, adapters: [], contextSize: 256, slots, threads: 2 });
    } finally {
      delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
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

  it("four slots generating at once, each sampling queued behind the decode of their shared batch, answer each as alone and as on libuv's pool", async () => {
    const on = await load("on", 4, bigramPath);
    const off = await load("off", 4, bigramPath);
    // different last tokens: each slot follows its own chain, so a sampling that read another slot's logits shows
    const cases: Case[] = [
      { name: "greedy a", prompt: "the weather today is", maxTokens: 24, sampling: greedy },
      { name: "greedy b", prompt: "once upon a tim", maxTokens: 31, sampling: greedy },
      { name: "greedy c", prompt: "answer:", maxTokens: 17, sampling: greedy },
      { name: "seeded", prompt: "hello wor", maxTokens: 28, sampling: { temperature: 0.7, topK: 40, topP: 0.95, minP: 0, seed: 5 } },
    ];
    const alone: Answer[] = [];
    for (const c of cases) alone.push(await answer(on, c));
    const chains = new Set(alone.map((a) => a.text));
    assert.equal(chains.size, cases.length, `the slots' answers differ from one another: ${[...chains].join(" | ")}`);
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await Promise.all(cases.map((c) => answer(on, c))), alone, `round ${round}: at once, as alone`);
    }
    assert.deepEqual(await Promise.all(cases.map((c) => answer(off, c))), alone, "on libuv's pool, at once");
  });
});
