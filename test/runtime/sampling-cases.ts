/** Sampling settings and prompts that the real-engine checks of answers share (context-thread, step-loop). */
import type { EvaluateOptions, SamplingOptions } from "../../runtime/engine/types.js";

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
