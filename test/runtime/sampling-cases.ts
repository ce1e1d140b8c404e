/**
 * What the real-engine checks of answers share (context-thread, step-loop, flash-attention): sampling
 * settings, prompts, the models with the engines that load them, and the binaries to run them on.
 */
import { join } from "node:path";
import { after, before } from "node:test";
import { BIGRAM_TARGET, cachedFixture } from "../../fixtures/gguf/index.js";
import type { EngineChoice } from "../../runtime/engine/binding.js";
import type { Engine, EngineModel, EvaluateOptions, SamplingOptions } from "../../runtime/engine/types.js";
import { ROOT } from "../helpers/mf.js";
import { cpuEngine, tinyGguf } from "./harness.js";

export const greedy: SamplingOptions = { temperature: 0, topK: 40, topP: 1, minP: 0, seed: 0 };
export const sampled = (seed: number): SamplingOptions => ({ temperature: 1.1, topK: 40, topP: 0.95, minP: 0, seed });

export interface Case {
  name: string;
  prompt: string;
  maxTokens: number;
  sampling: SamplingOptions;
  grammar?: EvaluateOptions["grammar"];
  probabilities?: boolean;
}

/**
 * Four answers for the bigram model's four slots at once: different last tokens, so each slot follows its
 * own chain, and a sampling that read another slot's logits shows.
 */
export const FOUR_SLOTS: readonly Case[] = [
  { name: "greedy a", prompt: "the weather today is", maxTokens: 24, sampling: greedy },
  { name: "greedy b", prompt: "once upon a tim", maxTokens: 31, sampling: greedy },
  { name: "greedy c", prompt: "answer:", maxTokens: 17, sampling: greedy },
  { name: "seeded", prompt: "hello wor", maxTokens: 28, sampling: { temperature: 0.7, topK: 40, topP: 0.95, minP: 0, seed: 5 } },
];

/**
 * For a suite on the real engine, called in its body: the tiny model's and the bigram model's paths, made
 * before its tests, and a list for the engines it creates, disposed after them.
 */
export function realModels(): { tiny: string; bigram: string; engines: Engine[] } {
  const models = { tiny: "", bigram: "", engines: [] as Engine[] };
  before(async () => {
    models.tiny = await tinyGguf();
    models.bigram = await cachedFixture(BIGRAM_TARGET, join(ROOT, ".mf-test-cache"));
  });
  after(async () => {
    for (const e of models.engines) await e.dispose();
  });
  return models;
}

/**
 * The binaries a suite runs on, with their labels: node-llama-cpp's prebuilt binary (undefined: the
 * engine's default), and the engine `mf engine build` made when there is one for this machine (CI builds it).
 */
export async function realBinaries(): Promise<[string, EngineChoice | undefined][]> {
  const built = await cpuEngine();
  const binaries: [string, EngineChoice | undefined][] = [["node-llama-cpp's prebuilt binary", undefined]];
  if (built.kind === "built") binaries.push(["the built engine", built]);
  return binaries;
}

/**
 * The built engine's count of decodes run ahead on `m`'s context (the patch's AddonDecodeAhead): run,
 * claimed by the batch that came next, removed.
 */
export function decodeAheadStats(m: EngineModel): { ran: number; claimed: number; removed: number } {
  return addonContext(m).getDecodeAheadStats();
}

/** The built engine's count of jobs its context's thread has run on `m`'s context, and of the posts that took their results back to JavaScript. */
export function runnerStats(m: EngineModel): { jobs: number; posts: number } {
  return addonContext(m).getRunnerStats();
}

/** The native context under `m` (node-llama-cpp's addon object, with mf's patch). */
function addonContext(m: EngineModel): {
  getDecodeAheadStats(): { ran: number; claimed: number; removed: number };
  getRunnerStats(): { jobs: number; posts: number };
} {
  return (m as unknown as { context: { _ctx: ReturnType<typeof addonContext> } }).context._ctx;
}
