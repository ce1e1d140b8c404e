import type { FlashAttention } from "../../core/config.js";
import { RuntimeError } from "../../core/errors.js";

/**
 * The inference engine seen by the runtime: load a GGUF into a handle with a few parallel slots, then
 * tokenize, detokenize, sample tokens and embed. Small on purpose (principle 6): the node-llama-cpp
 * implementation and the fake engine of the scheduler tests both pass `test/runtime/engine-suite.ts`.
 */

/** Ollama's default for `draft_num_predict` with a separate draft model (docs/modelfile: "default to 4"). */
export const DEFAULT_DRAFT_TOKENS = 4;
/** The most tokens a draft runs ahead: larger values are taken as this (each one costs a draft decode). */
export const MAX_DRAFT_TOKENS = 64;

export interface LoadSpec {
  /** the GGUF weights, loaded in place (a store blob path) */
  modelPath: string;
  /** LoRA adapter GGUFs applied to every slot */
  adapters: string[];
  /** context size of one slot, in tokens */
  contextSize: number;
  /** parallel sequences (slots) of the one context */
  slots: number;
  /** prompt-processing batch size */
  batchSize?: number;
  /** CPU threads, as asked (request, then `mf serve --threads`, then MF_THREADS); undefined: the thread policy */
  threads?: number;
  /**
   * A draft model for speculative decoding (the image's DRAFT layer): it drafts up to `maxTokens` tokens
   * ahead for every slot (`draft_num_predict`); see draft.ts
   */
  draft?: { modelPath: string; maxTokens: number };
  /**
   * A Jinja chat template that replaces the GGUF's own (an image's `application/vnd.docker.ai.chat.template.jinja`
   * layer, kept when a Docker Model Runner or ModelPack image was converted)
   */
  chatTemplate?: string;
}

export interface RepeatPenalty {
  /** penalty on repeated tokens (1 = none) */
  penalty: number;
  /** how many of the last tokens count (0 = none) */
  lastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

export interface SamplingOptions {
  /** 0 = greedy */
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  /** a fixed seed; the caller resolves "random" (-1) to a concrete number */
  seed: number;
  repeat?: RepeatPenalty;
}

/** `json`: any JSON object (Ollama's `format: "json"`); `gbnf`: grammar text, from a JSON Schema by grammar/jsonschema. */
export type GrammarSpec = { kind: "json" } | { kind: "gbnf"; text: string };

/** A sampled token's probability and the most probable alternatives, as natural logs. */
export interface TokenProbability {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

export interface EvaluateOptions {
  sampling: SamplingOptions;
  grammar?: GrammarSpec;
  /**
   * Report each sampled token's probability (and the `top` most probable tokens) to `sink` before the
   * token is yielded. node-llama-cpp gives them after sampling: from the distribution that temperature,
   * top-k, top-p and min-p left, not the model's raw one.
   */
  probabilities?: { top: number; sink: (p: TokenProbability) => void };
  /**
   * The most tokens the caller will take (its `num_predict`, or the room left in the context): an engine
   * that decodes ahead of its consumer never decodes past it.
   */
  maxTokens?: number;
}

export interface EngineModel {
  /** context size of one slot, as created (may be rounded up from the request) */
  readonly contextSize: number;
  readonly slots: number;
  /** the CPU threads it runs with (fewer for a while when a default-count model shares busy CPUs) */
  readonly threads: number;
  /** the count asked for (request, `--threads`, MF_THREADS) when it was clamped to the usable CPUs or not; undefined: the policy's */
  readonly threadsAsked?: number;
  /** llama.cpp's flash attention for its context, as set (MF_FLASH_ATTENTION); "auto": where the backend runs it */
  readonly flashAttention?: FlashAttention;
  /** bytes of memory the weights and contexts take */
  readonly sizeBytes: number;
  /** of which on the GPU */
  readonly vramBytes: number;
  /** the draft model decoding beside it, when the image has one (speculative decoding) */
  readonly draft?: EngineDraft;
  /** the BOS token the prompt should start with, or null when the model wants none */
  readonly bosToken: number | null;
  /** tokens are the numbers 0 … vocabSize - 1 */
  readonly vocabSize: number;
  /** the GGUF's own chat template (tokenizer.chat_template), if any */
  readonly chatTemplate: string | undefined;
  /**
   * `chatTemplate` (Jinja) applied to a chat, ending with the assistant's turn opened (or continuing a
   * trailing assistant message), as prompt text with its special tokens written out; undefined when the
   * GGUF has no chat template.
   */
  applyChatTemplate(messages: readonly { role: string; content: string }[]): string | undefined;
  tokenize(text: string, opts?: { special?: boolean }): number[];
  /** `previous`: tokens preceding these, for correct spacing of the continuation */
  detokenize(tokens: readonly number[], opts?: { special?: boolean; previous?: readonly number[] }): string;
  /**
   * Evaluates the prompt on a free slot (reusing the longest cached prefix) and yields sampled tokens
   * until an end-of-generation token; the caller stops it early with `return()`. Throws when no slot is
   * free (the scheduler prevents that) or the prompt does not fit a slot, and throws `unloadedError()` when
   * the model is disposed while it runs: a cut answer never ends as if it were complete.
   */
  evaluate(prompt: readonly number[], opts: EvaluateOptions): AsyncGenerator<number, void, void>;
  /** The embedding of a token sequence (not normalised); fewer than `contextSize` tokens. */
  embed(tokens: readonly number[], signal?: AbortSignal): Promise<number[]>;
  dispose(): Promise<void>;
}

/** A loaded draft model, as /api/ps shows it. */
export interface EngineDraft {
  /** bytes of its weights and context (counted in the model's `sizeBytes` too) */
  readonly sizeBytes: number;
  /** tokens it drafts ahead (draft_num_predict) */
  readonly maxTokens: number;
  /** drafted tokens the model accepted and rejected so far, and the target decodes that checked them */
  counts(): { accepted: number; rejected: number; decodes: number };
}

export interface Engine {
  readonly name: string;
  /** Loads a model; a failure is an MfError whose message carries the engine's own reason. */
  load(spec: LoadSpec, signal?: AbortSignal): Promise<EngineModel>;
  dispose(): Promise<void>;
}

/** What `evaluate` throws when its model is unloaded under it (a server shutting down past its grace period). */
export function unloadedError(): RuntimeError {
  return new RuntimeError("SERVICE_UNAVAILABLE", "the model was unloaded before the answer was complete (the server is shutting down)");
}
