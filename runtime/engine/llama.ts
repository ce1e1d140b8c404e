/**
 * The engine over node-llama-cpp: one Llama binding per engine, one context per loaded model with a
 * sequence per slot, the GGUF loaded in place from the store. llama.cpp's own log is captured, because
 * node-llama-cpp only says "Failed to load model": a failed load reports llama.cpp's reason.
 *
 * Threads: every context gets an explicit count, never node-llama-cpp's own default (at least 4 without
 * a GPU, however few the cores): the one asked for (clamped to the usable CPUs, said in the log), else
 * the thread policy's (`threads.ts`). node-llama-cpp's thread splitter (`maxThreads`) caps the threads
 * all contexts decode with together: at the usable CPUs, and at the CPUs that other processes leave
 * free (measured every `loadIntervalMs`), but never below the count a loaded model was explicitly given.
 */
import {
  type ChatHistoryItem,
  JinjaTemplateChatWrapper,
  LlamaGrammarEvaluationState,
  LlamaLogLevel,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaGrammar,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { RuntimeError } from "../../core/errors.js";
import { inSequenceOrder } from "./batch-order.js";
import { DraftRuntime } from "./draft.js";
import { type EngineChoice, loadBinding } from "./binding.js";
import { CpuLoadMeter, readCpuFacts } from "./cpu.js";
import { StepBarrier } from "./step-barrier.js";
import {
  CALIBRATE_CONTEXT,
  CALIBRATE_ROUNDS,
  CALIBRATE_TOKENS,
  CALIBRATE_UNDER_MS,
  type CpuFacts,
  type FreeCpus,
  type ThreadPlan,
  calibratedThreads,
  clampThreads,
  nextFreeCpus,
  planThreads,
} from "./threads.js";
import { type Engine, type EngineModel, type EvaluateOptions, type GrammarSpec, type LoadSpec, unloadedError } from "./types.js";

export type EngineLogLevel = "error" | "warn" | "info" | "debug";

export interface LlamaEngineOptions {
  /** false: CPU only (the default; tests and benchmarks use it); "auto": a GPU when one is usable */
  gpu?: false | "auto";
  /** receives llama.cpp's log lines */
  log?: (level: EngineLogLevel, message: string) => void;
  /** CPU threads of a context that asks for none (`mf serve --threads`, MF_THREADS); undefined: the thread policy */
  threads?: number;
  /** the native binding (binding.ts's chooseEngine); default: node-llama-cpp's prebuilt binary */
  engine?: EngineChoice;
  /** receives mf's own words about threads: the policy (info), a change under load (debug) */
  notice?: (level: EngineLogLevel, message: string) => void;
  /** the machine's CPU facts (default: read from /proc and /sys) */
  cpu?: CpuFacts;
  /**
   * false: a default count is never measured at load (threads.ts, CALIBRATE_UNDER_MS), as on a stand-in
   * machine (`cpu`), whose counts the real CPUs cannot measure; default true
   */
  measureThreads?: boolean;
  /** how often the CPUs' load is measured, in ms (default 200; 0: never, default-count models keep their count) */
  loadIntervalMs?: number;
}

const LEVELS: Partial<Record<LlamaLogLevel, EngineLogLevel>> = {
  [LlamaLogLevel.fatal]: "error",
  [LlamaLogLevel.error]: "error",
  [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "info",
  [LlamaLogLevel.log]: "info",
  [LlamaLogLevel.debug]: "debug",
};

export function createLlamaEngine(opts: LlamaEngineOptions = {}): Engine {
  return new LlamaEngine(opts);
}

class LlamaEngine implements Engine {
  readonly name = "node-llama-cpp";
  private llama: Promise<Llama> | undefined;
  /** the binding once loaded, for the synchronous cap */
  private ready: Llama | undefined;
  /** recent error lines of llama.cpp, read back when a load fails */
  private errors: string[] = [];
  /** loads run one at a time so that the captured lines belong to the load that failed */
  private loading: Promise<unknown> = Promise.resolve();
  private readonly models = new Set<LlamaEngineModel>();
  private readonly facts: CpuFacts;
  /** the CPUs this process may use: every count is clamped to it */
  private readonly usable: number;
  /** the thread plan, once the binding (which counts llama.cpp's math cores) is loaded */
  private plan: ThreadPlan | undefined;
  /** CPUs other processes leave free, as last measured */
  private cpus: FreeCpus;
  /** contexts being created: node-llama-cpp clamps a context's threads to `maxThreads` when it creates it */
  private creating = 0;
  /** default counts measured at load on an engine without a persistent pool, by GGUF path: a reload keeps it */
  private readonly measured = new Map<string, number>();
  private meter: CpuLoadMeter | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: LlamaEngineOptions) {
    this.facts = opts.cpu ?? readCpuFacts();
    this.usable = planThreads(this.facts).usable;
    this.cpus = { free: this.usable, calmMs: 0 };
    // measured from the start, so that the first load already knows how busy the CPUs are
    const interval = opts.loadIntervalMs ?? 200;
    if (interval > 0) {
      this.meter = new CpuLoadMeter(this.facts.allowed);
      this.meter.othersBusy();
      this.timer = setInterval(() => this.measure(interval), interval);
      this.timer.unref();
    }
  }

  private binding(): Promise<Llama> {
    this.llama ??= loadBinding(this.opts.engine ?? { kind: "prebuilt", description: "" }, {
      gpu: this.opts.gpu ?? false,
      // node-llama-cpp's own cap is max(4, math cores) without a GPU; ours is the usable CPUs
      maxThreads: this.usable,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (!text) return;
        const l = LEVELS[level] ?? "debug";
        if (l === "error") {
          this.errors.push(text);
          if (this.errors.length > 50) this.errors.shift();
        }
        this.opts.log?.(l, text);
      },
    });
    return this.llama;
  }

  load(spec: LoadSpec, signal?: AbortSignal): Promise<EngineModel> {
    const run = this.loading.then(() => this.loadNow(spec, signal));
    this.loading = run.catch(() => undefined);
    return run;
  }

  /** The thread policy for this machine, with llama.cpp's count of math cores. */
  private threadPlan(llama: Llama): ThreadPlan {
    if (!this.plan) {
      this.plan = planThreads({ ...this.facts, mathCores: this.facts.mathCores ?? llama.cpuMathCores });
      this.opts.notice?.("info", `threads: ${this.plan.threads} per model by default (${this.plan.why}), at most ${this.plan.usable}`);
    }
    return this.plan;
  }

  /** The threads of a model: as asked (request, flag, MF_THREADS), clamped to the usable CPUs; else the policy's. */
  private threadsFor(llama: Llama, spec: LoadSpec): ModelThreads {
    const plan = this.threadPlan(llama);
    const asked = spec.threads ?? this.opts.threads;
    if (asked === undefined || !Number.isFinite(asked) || asked < 1) return { threads: plan.threads };
    const c = clampThreads(asked, plan);
    return { threads: c.threads, asked: Math.floor(asked) };
  }

  /** Creates a context at its full thread count, whatever the cap under load is at the moment. */
  private async fullThreads<T>(create: () => Promise<T>): Promise<T> {
    this.creating++;
    this.applyCap();
    try {
      return await create();
    } finally {
      this.creating--;
      this.applyCap();
    }
  }

  /**
   * node-llama-cpp's `maxThreads` (the threads all contexts may decode with at once): the usable CPUs
   * while a context is created; else the CPUs other processes leave free, but never below the count a
   * loaded model was explicitly given.
   */
  private applyCap(): void {
    const llama = this.ready;
    const plan = this.plan;
    if (!llama || !plan) return;
    let cap = plan.usable;
    if (this.creating === 0) {
      const explicit = Math.max(0, ...[...this.models].map((m) => (m.threadsAsked !== undefined ? m.threads : 0)));
      cap = Math.max(1, Math.min(plan.usable, Math.max(this.cpus.free, explicit)));
    }
    if (llama.maxThreads !== cap) llama.maxThreads = cap;
  }

  /** Whether a CPU is left free beside `m`'s decode threads (measured: other processes' load counts). */
  private spareCpu(m: LlamaEngineModel): boolean {
    const decoding = Math.min(m.threads, this.ready?.maxThreads ?? m.threads);
    return this.cpus.free > decoding;
  }

  private measure(elapsedMs: number): void {
    const others = this.meter?.othersBusy();
    if (others === undefined) return;
    const next = nextFreeCpus(this.cpus, this.usable, others, elapsedMs);
    if (next.free !== this.cpus.free && this.plan && this.models.size > 0) {
      this.opts.notice?.("debug", `threads: other processes keep ${others.toFixed(2)} of ${this.usable} CPUs busy; default-count models now decode with at most ${Math.min(next.free, this.plan.threads)}`);
    }
    this.cpus = next;
    this.applyCap();
  }

  private async loadNow(spec: LoadSpec, signal?: AbortSignal): Promise<EngineModel> {
    signal?.throwIfAborted();
    const llama = await this.binding();
    this.ready = llama;
    const threading = this.threadsFor(llama, spec);
    this.errors = [];
    let model: LlamaModel | undefined;
    try {
      model = await llama.loadModel({ modelPath: spec.modelPath, loadSignal: signal });
      if (threading.asked === undefined) threading.threads = await this.calibrate(model, spec, threading.threads, signal);
      const threads = threading.threads;
      let created: LlamaContext | undefined;
      const loaded = model;
      const context = await this.fullThreads(() =>
        loaded.createContext({
          batching: { itemPrioritizationStrategy: inSequenceOrder(() => created) },
          contextSize: Math.min(spec.contextSize, Math.max(loaded.trainContextSize, 1)) || spec.contextSize,
          sequences: spec.slots,
          batchSize: spec.batchSize,
          threads,
          lora: spec.adapters.length ? { adapters: spec.adapters.map((filePath) => ({ filePath })) } : undefined,
        }),
      );
      created = context;
      const draft = spec.draft ? await DraftRuntime.load(llama, context, spec, { signal, reason: (e) => this.reason(e) }) : undefined;
      const m: LlamaEngineModel = new LlamaEngineModel(llama, model, context, spec, this.opts, threading, (f) => this.fullThreads(f), () => {
        this.models.delete(m);
        this.applyCap();
      }, () => this.spareCpu(m), draft);
      this.models.add(m);
      this.applyCap();
      return m;
    } catch (e) {
      await model?.dispose().catch(() => {});
      if (signal?.aborted || e instanceof RuntimeError) throw e;
      throw new RuntimeError("MODEL_LOAD_FAILED", `failed to load model ${spec.modelPath}: ${this.reason(e)}`, { cause: e });
    }
  }

  /**
   * The default count of a model on an engine without a persistent threadpool, measured (threads.ts,
   * CALIBRATE_UNDER_MS): short greedy generations at the policy's count and at 1 thread, in turns, each
   * on a context of its own (the model's size, up to CALIBRATE_CONTEXT), disposed after. Every other
   * engine, and a model on a GPU, keeps the count.
   */
  private async calibrate(model: LlamaModel, spec: LoadSpec, threads: number, signal?: AbortSignal): Promise<number> {
    const path = spec.modelPath;
    if (threads <= 1 || this.opts.engine?.kind === "built" || this.opts.measureThreads === false || model.gpuLayers > 0) return threads;
    const known = this.measured.get(path);
    if (known !== undefined) return known;
    const chosen = await this.fullThreads(async () => {
      const contexts = new Map<number, LlamaContext>();
      try {
        // in a context of the model's own size (up to CALIBRATE_CONTEXT), as its answers will be
        const contextSize = Math.min(spec.contextSize, Math.max(model.trainContextSize, 1), CALIBRATE_CONTEXT) || CALIBRATE_CONTEXT;
        for (const n of [threads, 1]) contexts.set(n, await model.createContext({ contextSize, sequences: 1, threads: n }));
        const token = (model.tokens.bos ?? model.tokenize("a")[0] ?? 0) as Token;
        /** the times (ms) between the tokens of a short greedy generation at `n` threads, from one token */
        const generate = async (n: number, tokens: number): Promise<number[]> => {
          const seq = contexts.get(n)!.getSequence();
          const gaps: number[] = [];
          try {
            let last = 0;
            for await (const _ of seq.evaluate([token], { temperature: 0 })) {
              signal?.throwIfAborted();
              const now = performance.now();
              if (last) gaps.push(now - last);
              last = now;
              if (gaps.length >= tokens) break;
            }
          } finally {
            seq.dispose();
          }
          return gaps;
        };
        // pages the weights in; decodes this slow are measured no further (the faster of two: one slow
        // decode may be the machine's moment)
        const first = await generate(threads, 2);
        const times = new Map<number, number[]>([[threads, first]]);
        if (Math.min(...first) < CALIBRATE_UNDER_MS) {
          times.set(1, []);
          await generate(1, 1);
          for (let r = 0; r < CALIBRATE_ROUNDS; r++) for (const n of r % 2 ? [threads, 1] : [1, threads]) times.get(n)!.push(...(await generate(n, CALIBRATE_TOKENS)));
        }
        const c = calibratedThreads(times);
        const ms = [...c.medians].map(([n, t]) => `${n} thread${n === 1 ? "" : "s"} ${t.toFixed(1)} ms`).join(", ");
        this.opts.notice?.(
          "info",
          `threads: ${c.threads} for ${path} by default, measured: ${ms} a token (this engine starts a decode's threads anew each time; \`mf engine build\` gives it a persistent pool)`,
        );
        return c.threads;
      } finally {
        for (const c of contexts.values()) await c.dispose();
      }
    });
    this.measured.set(path, chosen);
    return chosen;
  }

  /** llama.cpp's own words for the failure, else node-llama-cpp's. */
  private reason(e: unknown): string {
    const said = this.errors.map((l) => /error loading model:\s*(.*)$/.exec(l)?.[1]).find((x) => x);
    if (said) return said;
    const last = this.errors.filter((l) => !/failed to load model$/i.test(l)).at(-1);
    return last ?? (e instanceof Error ? e.message : String(e));
  }

  async dispose(): Promise<void> {
    for (const m of [...this.models]) await m.dispose();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.llama) await (await this.llama).dispose();
    this.llama = undefined;
    this.ready = undefined;
  }
}

interface Slot {
  seq: LlamaContextSequence;
  busy: boolean;
}

interface ModelThreads {
  threads: number;
  /** the count asked for (request, flag, MF_THREADS) before the clamp; undefined: the policy's */
  asked?: number;
}

class LlamaEngineModel implements EngineModel {
  readonly slots: number;
  readonly threads: number;
  readonly threadsAsked: number | undefined;
  readonly contextSize: number;
  readonly sizeBytes: number;
  readonly vramBytes: number;
  readonly bosToken: number | null;
  readonly vocabSize: number;
  readonly chatTemplate: string | undefined;
  private readonly pool: Slot[] = [];
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** null: the GGUF's chat template could not be used */
  private jinja: JinjaTemplateChatWrapper | null | undefined;
  private embedQueue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** keeps the generating slots in step, so that one decode carries a token of each */
  private readonly barrier = new StepBarrier();

  constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    spec: LoadSpec,
    opts: LlamaEngineOptions,
    threading: ModelThreads,
    private readonly fullThreads: <T>(create: () => Promise<T>) => Promise<T>,
    private readonly onDispose: () => void,
    /** whether a CPU is free beside the decode's threads, for the consumer's work: then tokens are decoded one ahead */
    private readonly readAhead: () => boolean,
    readonly draft?: DraftRuntime,
  ) {
    this.slots = spec.slots;
    this.threads = threading.threads;
    this.threadsAsked = threading.asked;
    this.contextSize = context.contextSize;
    this.sizeBytes = model.size + context.stateSize + (draft?.sizeBytes ?? 0);
    this.vramBytes = model.gpuLayers > 0 && opts.gpu ? this.sizeBytes : 0;
    this.bosToken = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
    const meta = model.fileInfo.metadata as { tokenizer?: { chat_template?: string; ggml?: { tokens?: readonly unknown[] } } };
    this.vocabSize = meta.tokenizer?.ggml?.tokens?.length ?? 0;
    const tpl = spec.chatTemplate ?? meta.tokenizer?.chat_template;
    this.chatTemplate = typeof tpl === "string" ? tpl : undefined;
    for (let i = 0; i < spec.slots; i++) this.pool.push({ seq: draft?.sequences[i] ?? context.getSequence(), busy: false });
  }

  applyChatTemplate(messages: readonly { role: string; content: string }[]): string | undefined {
    if (this.chatTemplate === undefined || this.jinja === null) return undefined;
    try {
      this.jinja ??= new JinjaTemplateChatWrapper({ template: this.chatTemplate, tokenizer: this.model.tokenizer, trimLeadingWhitespaceInResponses: false });
    } catch {
      // a chat template node-llama-cpp cannot use counts as none: the prompt goes as is
      this.jinja = null;
      return undefined;
    }
    const history: ChatHistoryItem[] = messages.map((m) =>
      m.role === "system" ? { type: "system", text: m.content } : m.role === "assistant" ? { type: "model", response: [m.content] } : { type: "user", text: m.content },
    );
    // an empty model turn at the end opens the answer; a trailing assistant message is continued as a prefill
    if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
    const { contextText } = this.jinja.generateContextState({ chatHistory: history });
    return this.model.detokenize(contextText.tokenize(this.model.tokenizer), true);
  }

  tokenize(text: string, opts: { special?: boolean } = {}): number[] {
    return this.model.tokenize(text, opts.special ?? false) as number[];
  }

  detokenize(tokens: readonly number[], opts: { special?: boolean; previous?: readonly number[] } = {}): string {
    return this.model.detokenize(tokens as Token[], opts.special ?? false, opts.previous as Token[] | undefined);
  }

  private grammar(spec: GrammarSpec): Promise<LlamaGrammar> {
    const key = spec.kind === "json" ? "json" : spec.text;
    let g = this.grammars.get(key);
    if (!g) {
      g = spec.kind === "json" ? this.llama.getGrammarFor("json") : this.llama.createGrammar({ grammar: spec.text });
      g.catch(() => this.grammars.delete(key));
      if (this.grammars.size > 32) this.grammars.delete(this.grammars.keys().next().value!);
      this.grammars.set(key, g);
    }
    return g;
  }

  /** The free slot whose cached tokens share the longest prefix with the prompt. */
  private takeSlot(prompt: readonly number[]): Slot {
    let best: Slot | undefined;
    let bestLen = -1;
    for (const s of this.pool) {
      if (s.busy) continue;
      const n = s.seq.compareContextTokens(prompt as Token[]).firstDifferentIndex;
      if (n > bestLen) {
        best = s;
        bestLen = n;
      }
    }
    if (!best) throw new RuntimeError("SERVICE_UNAVAILABLE", "no free slot on this model");
    best.busy = true;
    return best;
  }

  async *evaluate(prompt: readonly number[], opts: EvaluateOptions): AsyncGenerator<number, void, void> {
    if (this.disposed) throw new RuntimeError("INTERNAL", "model is unloaded");
    if (prompt.length === 0) throw new RuntimeError("BAD_REQUEST", "empty prompt");
    if (prompt.length >= this.contextSize) {
      throw new RuntimeError("BAD_REQUEST", `prompt of ${prompt.length} tokens does not fit the context of ${this.contextSize}`);
    }
    const grammar = opts.grammar ? await this.grammar(opts.grammar) : undefined;
    const slot = this.takeSlot(prompt);
    try {
      const seq = slot.seq;
      let common = Math.min(seq.compareContextTokens(prompt as Token[]).firstDifferentIndex, prompt.length - 1);
      if (common < seq.nextTokenIndex) {
        try {
          await seq.eraseContextTokenRanges([{ start: common, end: seq.nextTokenIndex }]);
        } catch {
          await seq.clearHistory();
          common = 0;
        }
      }
      const s = opts.sampling;
      const history = [...prompt];
      const rp = s.repeat;
      const penalize = rp && rp.lastN !== 0 && (rp.penalty !== 1 || rp.presencePenalty !== 0 || rp.frequencyPenalty !== 0);
      const lastN = rp && rp.lastN < 0 ? this.contextSize : (rp?.lastN ?? 0);
      const limit = opts.maxTokens !== undefined && opts.maxTokens > 0 ? opts.maxTokens : Infinity;
      let produced = 0;
      const options = {
        // mf's patch: while the consumer handles token N, the context decodes it for token N + 1,
        // asked at each sampling whether that token will be asked for (never past the limit)
        decodeAhead: () => produced + 1 < limit,
        temperature: s.temperature,
        topK: s.topK,
        topP: s.topP,
        minP: s.minP,
        seed: s.seed,
        repeatPenalty: penalize
          ? {
              punishTokens: () => history.slice(-lastN) as Token[],
              maxPunishTokens: lastN,
              penalty: rp.penalty,
              presencePenalty: rp.presencePenalty,
              frequencyPenalty: rp.frequencyPenalty,
            }
          : undefined,
        grammarEvaluationState: grammar ? new LlamaGrammarEvaluationState({ model: this.model, grammar }) : undefined,
      };
      const probs = opts.probabilities;
      this.draft?.configure(seq, s);
      // a model with a draft keeps out of the step barrier (see draft.ts)
      const barrier = this.draft ? undefined : this.barrier;
      const gen: AsyncGenerator<Token, void, void> = probs
        ? withProbabilities(seq.evaluateWithMetadata(prompt.slice(common) as Token[], { confidence: true, probabilities: probs.top > 0 }, options), probs)
        : seq.evaluate(prompt.slice(common) as Token[], options);
      // Read-ahead: with a CPU to spare beside the decode's threads, the next token is asked for as soon as
      // one arrives (once the step barrier lets this slot go), so that its decode runs while the consumer
      // (detokenizing, the HTTP write) handles this one. Never past the consumer's limit; never with
      // probabilities, which must reach their sink in step with the tokens.
      const ahead = this.readAhead() && !probs;
      let stopping = false;
      let next: Promise<IteratorResult<Token, void> | undefined> = gen.next();
      try {
        for (;;) {
          const r = await next;
          if (!r || r.done) break;
          const token = r.value;
          history.push(token);
          produced++;
          barrier?.received(slot);
          if (ahead && produced < limit) {
            next = barrier ? barrier.arrive(slot).then(() => (stopping ? undefined : gen.next())) : gen.next();
            next.catch(() => undefined); // awaited by the loop or below: never an unhandled rejection
            yield token;
          } else {
            yield token;
            await barrier?.arrive(slot);
            next = gen.next();
          }
        }
      } catch (e) {
        throw this.disposed ? unloadedError() : e;
      } finally {
        // a token asked for ahead that nobody takes: its decode ends before the slot is free again
        // (leaving the barrier first releases an arrival still waiting on it)
        stopping = true;
        this.barrier.leave(slot);
        await next.catch(() => undefined);
        await gen.return();
      }
      if (this.disposed) throw unloadedError();
    } finally {
      slot.busy = false;
    }
  }

  async embed(tokens: readonly number[], signal?: AbortSignal): Promise<number[]> {
    if (tokens.length >= this.contextSize) throw new RuntimeError("BAD_REQUEST", "input exceeds the context length");
    this.embedding ??= this.fullThreads(() => this.model.createEmbeddingContext({ contextSize: this.contextSize, threads: this.threads }));
    const run = this.embedQueue.then(async () => {
      signal?.throwIfAborted();
      const ctx = await this.embedding!;
      return [...(await ctx.getEmbeddingFor(tokens as Token[])).vector];
    });
    this.embedQueue = run.catch(() => undefined);
    return run;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.onDispose();
    const emb = this.embedding;
    this.embedding = undefined;
    if (emb) await (await emb.catch(() => undefined))?.dispose();
    await this.context.dispose();
    await this.draft?.dispose();
    await this.model.dispose();
  }
}

/** Tokens from node-llama-cpp's metadata stream, each reported with its probabilities first. */
async function* withProbabilities(
  gen: AsyncGenerator<{ token: Token; confidence: number; probabilities?: Map<Token, number> }, void, void>,
  probs: NonNullable<EvaluateOptions["probabilities"]>,
): AsyncGenerator<Token, void, void> {
  for await (const out of gen) {
    const top: { token: number; logprob: number }[] = [];
    if (probs.top > 0 && out.probabilities) {
      // the N most probable, kept in order while scanning once
      for (const [token, p] of out.probabilities) {
        const lp = Math.log(p);
        if (top.length === probs.top && lp <= top[top.length - 1]!.logprob) continue;
        let i = top.length;
        while (i > 0 && top[i - 1]!.logprob < lp) i--;
        top.splice(i, 0, { token, logprob: lp });
        if (top.length > probs.top) top.pop();
      }
    }
    probs.sink({ token: out.token, logprob: Math.log(out.confidence), top });
    yield out.token;
  }
}
