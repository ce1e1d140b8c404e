/**
 * Speculative decoding for an image with a DRAFT layer, over node-llama-cpp's DraftSequenceTokenPredictor.
 * The draft model is loaded beside the target with one context of its own and a sequence per slot; each
 * slot's target sequence gets a token predictor over its draft sequence. The draft model drafts up to
 * `draft_num_predict` tokens ahead (Ollama's parameter, default 4; 0 loads no draft), and the target checks
 * the drafted tokens in the same decode as its own next token: at temperature 0 the output is the one the
 * target alone gives, only sooner.
 *
 * All of a step's drafted tokens are checked in one target decode. node-llama-cpp 3.21.1 as published
 * checks only the first: in `_speculativeEvaluate` (dist/evaluator/LlamaContext/LlamaContext.js) a later
 * drafted token is compared with the token sampled after the one before it, read from `validatedTokens`,
 * an array nothing ever added to, so every drafted token after the first was counted as refuted and
 * erased again, and a decode yielded at most two tokens. mf's patch to node-llama-cpp
 * (`patches/node-llama-cpp+<version>.patch`, applied by `npm ci`; JavaScript only, so it does not change
 * the engine `mf engine build` makes) records each validated token there: a decode that checks N agreeing
 * drafted tokens yields N + 1.
 *
 * Repeat penalties. node-llama-cpp samples a drafted position with the penalty list as it stood before the
 * decode (our `punishTokens` cannot see the tokens drafted in the same batch), so with a repeat, presence or
 * frequency penalty on, a checked token could differ from the one sampled without the draft. Such a request
 * drafts nothing: the same output, no speed-up.
 *
 * Threads. The draft's context gets one thread: a draft is small, and it drafts while the target waits
 * for it (or, from the first token of a step the target hands out, beside the target's decode), so more
 * threads would spin beside the target's (llama.cpp's worker threads spin; more threads than free cores
 * collapse, issue 13).
 *
 * Several slots (MF_NUM_PARALLEL > 1): every slot has its own draft sequence in the one draft context, and
 * its own predictor. A model with a draft does not join the step barrier (step-barrier.ts): the barrier
 * holds each slot to one token per step, while a slot with checked draft tokens yields several tokens from
 * one decode; held in step, the drafted tokens would be spent waiting for the other slots' decodes. Its
 * slots' decodes are batched by node-llama-cpp as they come, each carrying its drafted tokens.
 */
import {
  DraftSequenceTokenPredictor,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type LlamaModelOptions,
  type SequenceEvaluateOptions,
  type Token,
  TokenPredictor,
} from "node-llama-cpp";
import { RuntimeError } from "../../core/errors.js";
import { type EngineDraft, type LoadSpec, MAX_DRAFT_TOKENS, type SamplingOptions } from "./types.js";

/** A repeat, presence or frequency penalty that applies: then nothing is drafted (see the top). */
function penalized(s: SamplingOptions): boolean {
  const r = s.repeat;
  return !!r && r.lastN !== 0 && (r.penalty !== 1 || r.presencePenalty !== 0 || r.frequencyPenalty !== 0);
}

/** One slot's predictor: node-llama-cpp's DraftSequenceTokenPredictor, switched off for a request it cannot serve exactly. */
export class SlotPredictor extends TokenPredictor {
  private on = true;
  /** target decodes that carried drafted tokens (node-llama-cpp asks for predictions once per decode) */
  decodes = 0;

  constructor(private readonly inner: DraftSequenceTokenPredictor) {
    super();
  }

  /** Before each evaluation on the slot: whether this request drafts. */
  configure(sampling: SamplingOptions): void {
    this.on = !penalized(sampling);
    if (!this.on) this.inner.stop();
  }

  reset(params: { targetSequence: LlamaContextSequence; stateTokens: Token[]; evaluateOptions: Readonly<SequenceEvaluateOptions> }): Promise<void> | void {
    // node-llama-cpp resets the predictor at the start of every evaluation: a request that drafts starts from its own state
    if (this.on) return this.inner.reset(params);
  }

  pushTokens(tokens: Token[]): void {
    if (this.on) this.inner.pushTokens(tokens);
  }

  predictTokens(): Token[] | Promise<Token[]> {
    if (!this.on) return [];
    const count = (t: Token[]) => {
      if (t.length) this.decodes++;
      return t;
    };
    const p = this.inner.predictTokens();
    return p instanceof Promise ? p.then(count) : count(p);
  }

  override stop(untilPredictionsExhausted?: boolean): void | Promise<void> {
    return this.inner.stop(untilPredictionsExhausted);
  }

  override dispose(): void | Promise<void> {
    return this.inner.dispose();
  }
}

/** The loaded draft of a model: its weights, its context, and the target's slot sequences that use it. */
export class DraftRuntime implements EngineDraft {
  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    /** the target context's sequences, one per slot, each with its predictor */
    readonly sequences: LlamaContextSequence[],
    readonly maxTokens: number,
  ) {}

  /** bytes of the draft's weights and context */
  get sizeBytes(): number {
    return this.model.size + this.context.stateSize;
  }

  /**
   * Loads `spec.draft` and gives each of the target context's `spec.slots` sequences a predictor over a
   * draft sequence. Refuses a draft whose vocabulary node-llama-cpp would reject, now rather than on the
   * first request. `reason` turns a failure into llama.cpp's own words.
   */
  static async load(
    llama: Llama,
    target: LlamaContext,
    spec: LoadSpec,
    o: { signal?: AbortSignal; reason: (e: unknown) => string; flashAttention?: LlamaModelOptions["defaultContextFlashAttention"] },
  ): Promise<DraftRuntime> {
    const draft = spec.draft!;
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({ modelPath: draft.modelPath, loadSignal: o.signal, defaultContextFlashAttention: o.flashAttention });
      const context = await model.createContext({
        contextSize: Math.min(spec.contextSize, Math.max(model.trainContextSize, 1)) || spec.contextSize,
        sequences: spec.slots,
        batchSize: spec.batchSize,
        threads: 1,
      });
      const maxTokens = Math.min(MAX_DRAFT_TOKENS, Math.max(1, Math.floor(draft.maxTokens)));
      const sequences: LlamaContextSequence[] = [];
      for (let i = 0; i < spec.slots; i++) {
        // minTokens = maxTokens: a target decode waits for the whole draft (draft_num_predict tokens, each a
        // decode of the small model) and checks it at once, as llama-server drafts; offered as they came, a
        // decode would often start with the one token drafted since the last. Drafting stops early at a
        // token below node-llama-cpp's minimum confidence (0.6), and the decode then checks what there is.
        const inner = new DraftSequenceTokenPredictor(context.getSequence(), { maxTokens, minTokens: maxTokens });
        sequences.push(target.getSequence({ tokenPredictor: new SlotPredictor(inner) }));
      }
      // node-llama-cpp's vocabulary check (it runs it again at the start of each drafting evaluation)
      await sequences[0]!.tokenPredictor!.reset({ targetSequence: sequences[0]!, stateTokens: [], evaluateOptions: {} });
      return new DraftRuntime(model, context, sequences, maxTokens);
    } catch (e) {
      await model?.dispose().catch(() => {});
      if (o.signal?.aborted) throw e;
      throw new RuntimeError("MODEL_LOAD_FAILED", `failed to load the draft model ${draft.modelPath}: ${o.reason(e)}`, { cause: e });
    }
  }

  counts(): { accepted: number; rejected: number; decodes: number } {
    let accepted = 0;
    let rejected = 0;
    let decodes = 0;
    for (const s of this.sequences) {
      if (s.disposed) continue;
      accepted += s.tokenPredictions.validated;
      rejected += s.tokenPredictions.refuted;
      decodes += (s.tokenPredictor as SlotPredictor).decodes;
    }
    return { accepted, rejected, decodes };
  }

  /** Before an evaluation on `seq`: whether it drafts (see SlotPredictor.configure). */
  configure(seq: LlamaContextSequence, sampling: SamplingOptions): void {
    (seq.tokenPredictor as SlotPredictor | undefined)?.configure(sampling);
  }

  /** After the target's context (which disposes the predictors with its sequences). */
  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }
}
