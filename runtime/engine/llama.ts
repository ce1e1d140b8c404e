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
 * On an engine without a persistent threadpool, the cap also carries a default-count model's trial
 * (threads.ts, ThreadTrial): blocks at 1 thread and at the policy's count over its first answers, then
 * the count that generated faster.
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
import type { FlashAttention } from "../../core/config.js";
import { RuntimeError } from "../../core/errors.js";
import { inSequenceOrder } from "./batch-order.js";
import { DraftRuntime } from "./draft.js";
import { type EngineChoice, loadBinding } from "./binding.js";
import { CpuLoadMeter, readCpuFacts } from "./cpu.js";
import { StepBarrier } from "./step-barrier.js";
import { StepBatch } from "./step-batch.js";
import { type CpuFacts, type FreeCpus, type ThreadPlan, ThreadTrial, clampThreads, medians, nextFreeCpus, planThreads } from "./threads.js";
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
   * false: a default count is never measured over a model's first answers (threads.ts, ThreadTrial), as
   * on a stand-in machine (`cpu`), whose counts the real CPUs cannot measure; default true
   */
  measureThreads?: boolean;
  /** how often the CPUs' load is measured, in ms (default 200; 0: never, default-count models keep their count) */
  loadIntervalMs?: number;
  /**
   * false: every answer generates through node-llama-cpp's batch queue (`evaluate`), as answers with a
   * grammar, probabilities or a draft always do; default true: the others step in mf's own loop (step-batch.ts)
   */
  stepLoop?: boolean;
  /**
   * llama.cpp's flash attention for every context of a model (MF_FLASH_ATTENTION): "auto" (the default, as
   * llama-server's) uses it wherever the backend runs it and the model allows it; "on" asks for it, "off" never
   */
  flashAttention?: FlashAttention;
}

const LEVELS: Partial<Record<LlamaLogLevel, EngineLogLevel>> = {
  [LlamaLogLevel.fatal]: "error",
  [LlamaLogLevel.error]: "error",
  [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "info",
  [LlamaLogLevel.log]: "info",
  [LlamaLogLevel.debug]: "debug",
};

/** node-llama-cpp's `defaultContextFlashAttention` for mf's setting */
function flashAttentionOf(fa: FlashAttention = "auto"): "auto" | boolean {
  return fa === "auto" ? "auto" : fa === "on";
}

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
  /** default counts measured over the first answers on an engine without a persistent pool, by GGUF path: a reload keeps it */
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
   * loaded model was explicitly given; never above what every default-count model decodes with now.
   */
  private applyCap(): void {
    const llama = this.ready;
    const plan = this.plan;
    if (!llama || !plan) return;
    let cap = plan.usable;
    if (this.creating === 0) {
      const explicit = Math.max(0, ...[...this.models].map((m) => (m.threadsAsked !== undefined ? m.threads : 0)));
      // a default-count model's own count: lower than the policy's while measured at 1 thread, or once 1 won
      const wanted = Math.max(0, ...[...this.models].map((m) => (m.threadsAsked === undefined ? m.decoding : 0)));
      const defaults = wanted > 0 ? Math.min(this.cpus.free, wanted) : this.cpus.free;
      cap = Math.max(1, Math.min(plan.usable, Math.max(defaults, explicit)));
    }
    if (llama.maxThreads !== cap) llama.maxThreads = cap;
  }

  /** Whether a CPU is left free beside `m`'s decode threads (measured: other processes' load counts). */
  private spareCpu(m: LlamaEngineModel): boolean {
    return this.cpus.free > this.decodeThreads(m);
  }

  /** the threads `m`'s decodes run on now: its count, within the engine's cap */
  private decodeThreads(m: LlamaEngineModel): number {
    return Math.min(m.decoding, this.ready?.maxThreads ?? m.decoding);
  }

  /** the answers generating now, on every model of this engine */
  private generatingAnswers(): number {
    let generating = 0;
    for (const m of this.models) generating += m.generating;
    return generating;
  }

  /**
   * Whether `m`'s decode threads leave one of the CPUs this process may use beside them, whatever other
   * processes' load: the step loop's decode ahead asks only this. A decode on fewer threads than the CPUs
   * synchronises with no thread the JavaScript thread could displace, so at worst the two share a CPU, which
   * costs what running them one after the other would. Measured on 2 cores at 1 thread, alternating with
   * llama-server and its client (whose load the meter counts, so `spareCpu` said no): 1.03x of llama-server
   * with the decode ahead, 0.95x without.
   */
  private cpuBeside(m: LlamaEngineModel): boolean {
    return this.usable > this.decodeThreads(m);
  }

  /**
   * Whether the step loop asks `m`'s context to decode each sampled token ahead: while a CPU is free beside
   * the decode's threads (`cpuBeside`), and also, where the decode's threads take every CPU, while this is
   * the only answer the process generates and the decode runs on several threads. The JavaScript thread's
   * work on one token (about 0.5 ms) then takes its CPU from one of them for a while, which costs less than
   * the decode waiting for it: measured on 2 cores at 2 threads, in rotation with the gate as it was (no
   * decode ahead there), 1 client: 1.02x, 1.02x and 1.06x (30, 20 and 15 rounds); 4 clients at once, where
   * four tokens' work takes it for longer: 0.96x, so several answers keep to `cpuBeside`. On one CPU there is
   * nothing to overlap.
   */
  private decodeAheadFor(m: LlamaEngineModel): boolean {
    // without a CPU beside them the decode's threads are at least the CPUs, so two CPUs mean two threads or more
    return this.cpuBeside(m) || (this.usable >= 2 && this.generatingAnswers() === 1);
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
      const flashAttention = flashAttentionOf(this.opts.flashAttention);
      model = await llama.loadModel({ modelPath: spec.modelPath, loadSignal: signal, defaultContextFlashAttention: flashAttention });
      if (threading.asked === undefined) threading.threads = this.measured.get(spec.modelPath) ?? threading.threads;
      const trial = threading.asked === undefined ? this.trialFor(model, spec.modelPath, threading.threads) : undefined;
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
      const draft = spec.draft
        ? await DraftRuntime.load(llama, context, spec, { signal, reason: (e) => this.reason(e), flashAttention })
        : undefined;
      const m: LlamaEngineModel = new LlamaEngineModel(llama, model, context, spec, this.opts, threading, (f) => this.fullThreads(f), () => {
        this.models.delete(m);
        this.applyCap();
      }, () => this.spareCpu(m), () => this.decodeAheadFor(m), draft);
      if (trial && !draft) {
        // a draft's tokens come several a decode: its model keeps the policy's count
        m.trial = { trial, clean: () => this.trialClean(trial), changed: () => this.trialChanged(trial, spec.modelPath) };
        this.opts.notice?.("info", `threads: measuring ${trial.threads} threads against 1 over the first answers of ${spec.modelPath}`);
      }
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
   * The measurement of a default count over the model's first answers (threads.ts, ThreadTrial), on an
   * engine without a persistent threadpool, unless it was measured before for this GGUF (`measured`, taken
   * at load). Every other engine, one thread, and a model on a GPU keep the policy's count.
   */
  private trialFor(model: LlamaModel, path: string, threads: number): ThreadTrial | undefined {
    if (threads <= 1 || this.opts.engine?.kind === "built" || this.opts.measureThreads === false || model.gpuLayers > 0) return undefined;
    return this.measured.has(path) ? undefined : new ThreadTrial(threads);
  }

  /** Whether a time between two tokens measures the trial's count: one answer decoding, at that count, with the CPUs free. */
  private trialClean(trial: ThreadTrial): boolean {
    return this.generatingAnswers() === 1 && this.creating === 0 && this.cpus.free >= trial.threads && this.ready?.maxThreads === trial.current;
  }

  private trialChanged(trial: ThreadTrial, path: string): void {
    this.applyCap();
    if (trial.chosen === undefined) return;
    this.measured.set(path, trial.chosen);
    const ms = [...medians(trial.times)].map(([n, t]) => `${n} thread${n === 1 ? "" : "s"} ${t.toFixed(1)} ms`).join(", ");
    this.opts.notice?.(
      "info",
      `threads: ${trial.chosen} for ${path} by default, measured over its first answers: ${ms} a token (this engine starts a decode's threads anew each time; \`mf engine build\` gives it a persistent pool)`,
    );
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

/** A sampler of node-llama-cpp's, for mf's patch's `_stepSequences` (a private of the pinned 3.21.1). */
interface StepSampler {
  dispose(): void;
}

/** One slot's part of a step: what `_stepSequences` reads, with StepBatch's order and size. */
interface Step {
  order: number;
  size: number;
  sequence: LlamaContextSequence;
  tokens: readonly number[];
  sampler: StepSampler;
  samplerOptions: object;
}

/** mf's patch to node-llama-cpp's LlamaContext: one step of several sequences (see step-batch.ts). */
interface SteppingContext {
  _createStepSampler(): StepSampler;
  _stepSequences(items: readonly Step[]): Promise<number[]>;
}

/** the patch's stepping when it is applied to this node-llama-cpp (always, after `npm ci`) */
function stepping(context: LlamaContext): SteppingContext | undefined {
  const c = context as unknown as Partial<SteppingContext>;
  return typeof c._stepSequences === "function" && typeof c._createStepSampler === "function" ? (c as SteppingContext) : undefined;
}

interface ModelThreads {
  threads: number;
  /** the count asked for (request, flag, MF_THREADS) before the clamp; undefined: the policy's */
  asked?: number;
}

/** A default count measured over a model's first answers, and the engine's side of it. */
interface TrialHooks {
  trial: ThreadTrial;
  /** whether the time since the last token measures the trial's current count */
  clean(): boolean;
  /** the count to decode with changed (a block ended, or the trial decided) */
  changed(): void;
}

class LlamaEngineModel implements EngineModel {
  readonly slots: number;
  private readonly given: number;
  readonly threadsAsked: number | undefined;
  readonly flashAttention: FlashAttention;
  /** the measurement of its default count, while one runs (engine without a persistent pool) */
  trial: TrialHooks | undefined;
  /** answers generating now */
  generating = 0;
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
  /** mf's own generation loop on this context, when the patch is applied and it is not switched off */
  private readonly steps: { context: SteppingContext; batch: StepBatch<Step> } | undefined;

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
    /** whether the step loop asks for the decode ahead now (`decodeAheadFor`: a CPU beside the decode's threads, or one answer alone) */
    private readonly aheadNow: () => boolean,
    readonly draft?: DraftRuntime,
  ) {
    this.slots = spec.slots;
    this.given = threading.threads;
    this.threadsAsked = threading.asked;
    this.flashAttention = opts.flashAttention ?? "auto";
    this.contextSize = context.contextSize;
    this.sizeBytes = model.size + context.stateSize + (draft?.sizeBytes ?? 0);
    this.vramBytes = model.gpuLayers > 0 && opts.gpu ? this.sizeBytes : 0;
    this.bosToken = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
    const meta = model.fileInfo.metadata as { tokenizer?: { chat_template?: string; ggml?: { tokens?: readonly unknown[] } } };
    this.vocabSize = meta.tokenizer?.ggml?.tokens?.length ?? 0;
    const tpl = spec.chatTemplate ?? meta.tokenizer?.chat_template;
    this.chatTemplate = typeof tpl === "string" ? tpl : undefined;
    for (let i = 0; i < spec.slots; i++) this.pool.push({ seq: draft?.sequences[i] ?? context.getSequence(), busy: false });
    const stepper = opts.stepLoop === false ? undefined : stepping(context);
    this.steps = stepper && { context: stepper, batch: new StepBatch<Step>((items) => stepper._stepSequences(items), context.batchSize) };
  }

  /** its count: the policy's while it is measured, then the one that generated faster */
  get threads(): number {
    return this.trial?.trial.chosen ?? this.given;
  }

  /** the count its decodes run with now (1 during a block of the trial at 1 thread) */
  get decoding(): number {
    return this.trial?.trial.current ?? this.given;
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
      const tail = prompt.slice(common) as Token[];
      const gen: AsyncGenerator<Token, void, void> = probs
        ? withProbabilities(seq.evaluateWithMetadata(tail, { confidence: true, probabilities: probs.top > 0 }, options), probs)
        : this.steps && !grammar && !this.draft
          ? this.stepTokens(this.steps, seq, tail, options)
          : seq.evaluate(tail, options);
      // Read-ahead: with a CPU to spare beside the decode's threads, the next token is asked for as soon as
      // one arrives (once the step barrier lets this slot go), so that its decode runs while the consumer
      // (detokenizing, the HTTP write) handles this one. Never past the consumer's limit; never with
      // probabilities, which must reach their sink in step with the tokens. Whether a CPU is spare is asked
      // at every token: a change under load, or a block of a thread-count trial, moves it.
      let stopping = false;
      let next: Promise<IteratorResult<Token, void> | undefined> = gen.next();
      let last = 0;
      this.generating++;
      try {
        for (;;) {
          const r = await next;
          if (!r || r.done) break;
          const token = r.value;
          history.push(token);
          produced++;
          barrier?.received(slot);
          const hooks = this.trial;
          if (hooks && hooks.trial.chosen === undefined) {
            const now = performance.now();
            const clean = hooks.clean();
            if (clean && last > 0 && hooks.trial.record(now - last)) hooks.changed();
            last = clean ? now : 0;
          }
          if (produced < limit && !probs && this.readAhead()) {
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
        this.generating--;
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

  /**
   * A slot's tokens from mf's own loop (step-batch.ts): its first step decodes the prompt (what is left of
   * it after the cached prefix; node-llama-cpp's queue first takes what would not leave room in the batch
   * for one token of every other slot) beside the tokens of the slots generating, then each step decodes its
   * last token and samples its next, until an end-of-generation token (which is not yielded, as `evaluate`
   * does not). A context about to fill hands over to node-llama-cpp's `evaluate`, which shifts it. The
   * sampler takes `options`' sampling settings, resolved at each step as `evaluate` resolves them (the
   * repeat penalty's recent tokens).
   */
  private async *stepTokens(
    steps: { context: SteppingContext; batch: StepBatch<Step> },
    seq: LlamaContextSequence,
    tail: Token[],
    options: Parameters<LlamaContextSequence["evaluate"]>[1] & { decodeAhead?: boolean | (() => boolean) },
  ): AsyncGenerator<Token, void, void> {
    const room = Math.max(1, this.context.batchSize - (this.slots - 1));
    if (tail.length > room) await seq.evaluateWithoutGeneratingNewTokens(tail.slice(0, tail.length - room));
    const order = (seq as unknown as { _sequenceId?: number })._sequenceId ?? 0;
    const sampler = steps.context._createStepSampler();
    // The decode ahead (the patch's AddonDecodeAhead, built engine only): the context's thread decodes the
    // sampled token at once, while this thread hands it out and builds the next step, which then finds it
    // done. Asked at each sampling, while the decode's threads leave a CPU of this process beside them, or
    // while this is the only answer generating (the engine's `decodeAheadFor`). Measured on 2 cores (the
    // bench's "ahead" part): 1 thread, +5-9% tok/s; 2 threads, 1 client, about +2%; 2 threads, 4 clients,
    // -4% (the JavaScript thread's work on four tokens then takes its CPU from one of the decode's threads,
    // which the others wait for), so not there.
    const asked = options.decodeAhead;
    const samplerOptions = {
      ...options,
      decodeAhead: () => (asked === true || (typeof asked === "function" && asked())) && this.aheadNow(),
    };
    try {
      let tokens: readonly Token[] = tail.slice(-room);
      for (;;) {
        if (seq.nextTokenIndex + tokens.length > this.contextSize - 1) {
          yield* seq.evaluate([...tokens], options);
          return;
        }
        const next = (await steps.batch.step({ order, size: tokens.length, sequence: seq, tokens, sampler, samplerOptions })) as Token;
        if (this.model.isEogToken(next)) return;
        tokens = [next];
        yield next;
      }
    } finally {
      sampler.dispose();
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
