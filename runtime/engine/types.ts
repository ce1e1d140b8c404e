/**
 * The inference engine seen by the runtime: load a GGUF into a handle with a few parallel slots, then
 * tokenize, detokenize, sample tokens and embed. Small on purpose (principle 6): the node-llama-cpp
 * implementation and the fake engine of the scheduler tests both pass `test/runtime/engine-suite.ts`.
 */

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

/** Constrained output: any JSON value, or JSON matching a schema. */
export type GrammarSpec = { kind: "json" } | { kind: "schema"; schema: object };

export interface EvaluateOptions {
  sampling: SamplingOptions;
  grammar?: GrammarSpec;
}

export interface EngineModel {
  /** context size of one slot, as created (may be rounded up from the request) */
  readonly contextSize: number;
  readonly slots: number;
  /** the CPU threads it runs with (fewer for a while when a default-count model shares busy CPUs) */
  readonly threads: number;
  /** the count asked for (request, `--threads`, MF_THREADS) when it was clamped to the usable CPUs or not; undefined: the policy's */
  readonly threadsAsked?: number;
  /** bytes of memory the weights and contexts take */
  readonly sizeBytes: number;
  /** of which on the GPU */
  readonly vramBytes: number;
  /** the BOS token the prompt should start with, or null when the model wants none */
  readonly bosToken: number | null;
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
   * free (the scheduler prevents that) or the prompt does not fit a slot.
   */
  evaluate(prompt: readonly number[], opts: EvaluateOptions): AsyncGenerator<number, void, void>;
  /** The embedding of a token sequence (not normalised); fewer than `contextSize` tokens. */
  embed(tokens: readonly number[], signal?: AbortSignal): Promise<number[]>;
  dispose(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** Loads a model; a failure is an MfError whose message carries the engine's own reason. */
  load(spec: LoadSpec, signal?: AbortSignal): Promise<EngineModel>;
  dispose(): Promise<void>;
}
