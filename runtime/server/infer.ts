/**
 * What /api/generate and /api/chat share: the server's dependencies, request options and `format`
 * resolved against the image, a lease on the loaded model, and one generation with Ollama's final
 * statistics.
 */
import type { FastifyBaseLogger } from "fastify";
import type { TemplateBudget } from "../../grammar/template/index.js";
import { RuntimeError } from "../../core/errors.js";
import type { LocalStore } from "../../core/store.js";
import type { ModelDescription } from "../../builder/describe.js";
import { runGeneration, type GenerationRequest, type GenerationResult, type LogprobEntry } from "../engine/generation.js";
import { schemaToGbnf } from "../../grammar/jsonschema/index.js";
import type { Engine, GrammarSpec } from "../engine/types.js";
import { parseKeepAlive, requestOptions, resolveRunOptions, type RunOptions } from "../options.js";
import type { ChatMessage, TemplateCache } from "../prompt/index.js";
import type { Lease, Scheduler } from "../scheduler.js";
import type { RuntimeMetrics } from "./metrics.js";
import { ModelResolver, modelRequest } from "./models.js";

export interface RuntimeDeps {
  store: LocalStore;
  engine: Engine;
  scheduler: Scheduler;
  models: ModelResolver;
  templates: TemplateCache;
  log: FastifyBaseLogger;
  /** default threads of a model context */
  threads?: number;
  version: string;
  homeDir: string;
  /** the only directory /api/create may read files from (`--create-root`); undefined: none */
  createRoot?: string;
  /** the budget of one request's prompt rendering */
  templateBudget(): TemplateBudget;
  /** logs a message once per server */
  warnOnce(message: string): void;
  /** Prometheus metrics (`mf serve --metrics`), told of each finished generation */
  metrics?: RuntimeMetrics;
}

export const IMAGES_UNSUPPORTED = "images are not supported: mf's engine (node-llama-cpp 3.x) has no vision support";

export interface Prepared {
  d: ModelDescription;
  run: RunOptions;
  keepAliveMs: number | undefined;
  grammar: GrammarSpec | undefined;
  /** when the request's work began (hrtime ns): the origin of its time to first token */
  startedAt: bigint;
  metrics?: RuntimeMetrics;
}

export function grammarOf(format: unknown): GrammarSpec | undefined {
  if (format === undefined || format === null || format === "") return undefined;
  if (format === "json") return { kind: "json" };
  // converted here, before anything is loaded or streamed, so that a schema mf cannot honour is a 400
  if (typeof format === "object" && !Array.isArray(format)) return { kind: "gbnf", text: schemaToGbnf(format) };
  throw new RuntimeError("BAD_REQUEST", `invalid format ${JSON.stringify(format)}: use "json" or a JSON Schema object`);
}

export async function prepare(deps: RuntimeDeps, body: { model: string; options?: unknown; keep_alive?: unknown; format?: unknown }): Promise<Prepared> {
  const startedAt = process.hrtime.bigint();
  const keepAliveMs = parseKeepAlive(body.keep_alive);
  const { options, warnings } = requestOptions(body.options);
  const grammar = grammarOf(body.format);
  const d = await deps.models.describe(body.model);
  for (const w of warnings) deps.warnOnce(w);
  const run = resolveRunOptions(d.params, options);
  // the same words as the options table's own warning, so that an option the table also flags is logged once
  for (const k of run.ignored) deps.warnOnce(`option ${k} is accepted for compatibility but ignored by the engine`);
  return { d, run, keepAliveMs, grammar, startedAt, metrics: deps.metrics };
}

export function acquire(deps: RuntimeDeps, p: Prepared, name: string, signal: AbortSignal): Promise<Lease> {
  return deps.scheduler.acquire(
    modelRequest(p.d, name, p.run.load, { slots: deps.scheduler.numParallel, keepAliveMs: p.keepAliveMs, signal, threads: deps.threads }),
  );
}

/** Empty prompt / messages: load the model (or with keep_alive 0, unload it) and say which. */
export async function loadOrUnload(deps: RuntimeDeps, p: Prepared, name: string, signal: AbortSignal): Promise<"load" | "unload"> {
  const req = modelRequest(p.d, name, p.run.load, { slots: deps.scheduler.numParallel, keepAliveMs: p.keepAliveMs, signal, threads: deps.threads });
  if (p.keepAliveMs === 0) {
    await deps.scheduler.expire(req.key);
    return "unload";
  }
  const lease = await deps.scheduler.acquire(req);
  lease.release();
  return "load";
}

export interface Stats {
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
  prompt_eval_duration: number;
  eval_count: number;
  eval_duration: number;
}

export function stats(r: GenerationResult, loadDuration: number, start: bigint): Stats {
  return {
    total_duration: Number(process.hrtime.bigint() - start),
    load_duration: loadDuration,
    prompt_eval_count: r.promptEvalCount,
    prompt_eval_duration: r.promptEvalDuration,
    eval_count: r.evalCount,
    eval_duration: r.evalDuration,
  };
}

/** Whether rendering needs the loaded model: no template in the request or the image (the GGUF's own then). */
export function needsGgufTemplate(p: Prepared, requestTemplate: string | undefined): boolean {
  return !requestTemplate && !p.d.template;
}

/** The loaded model's chat template as runtime/prompt's `ggufTemplate`. */
export function ggufTemplate(lease: Lease | undefined): ((messages: ChatMessage[]) => string | undefined) | undefined {
  if (!lease) return undefined;
  return (messages) => lease.model.applyChatTemplate(messages.map((m) => ({ role: m.role, content: m.content ?? "" })));
}

/** Tokenizes a rendered prompt after `context`, with BOS when the model wants one, fitted to the context. */
export function promptTokens(lease: Lease, text: string, context: number[] | undefined): number[] {
  const m = lease.model;
  // `context` comes from the client: ids the model does not have would fail deep in the engine
  const bad = m.vocabSize > 0 ? context?.find((t) => t >= m.vocabSize) : undefined;
  if (bad !== undefined) {
    throw new RuntimeError("BAD_REQUEST", `invalid context: token ${bad} is not in the model's vocabulary (0 to ${m.vocabSize - 1}); send back the context of an answer of this model`);
  }
  let tokens = m.tokenize(text, { special: true });
  if (context?.length) tokens = [...context, ...tokens];
  else if (m.bosToken !== null && tokens[0] !== m.bosToken) tokens = [m.bosToken, ...tokens];
  if (tokens.length === 0) tokens = m.bosToken !== null ? [m.bosToken] : m.tokenize(" ");
  return tokens;
}

export async function generate(
  lease: Lease,
  p: Prepared,
  prompt: number[],
  onText: (t: string) => void,
  signal: AbortSignal,
  logprobs?: GenerationRequest["logprobs"],
): Promise<GenerationResult> {
  const begun = process.hrtime.bigint();
  const r = await runGeneration(
    lease.model,
    { prompt, maxTokens: p.run.numPredict, stop: p.run.stop, sampling: p.run.sampling, grammar: p.grammar, logprobs },
    onText,
    signal,
  );
  p.metrics?.generated({
    promptTokens: r.promptEvalCount,
    generatedTokens: r.evalCount,
    // the prompt's evaluation ends at the first token
    firstTokenNs: r.evalCount > 0 ? Number(begun - p.startedAt) + r.promptEvalDuration : undefined,
    evalNs: r.evalDuration,
  });
  return r;
}

/**
 * `logprobs` / `top_logprobs` of a request (native or OpenAI): each generated token's log-probability,
 * collected as it is sampled; a streamed answer drains what came since its last chunk.
 */
export class Logprobs {
  readonly all: LogprobEntry[] = [];
  private pending: LogprobEntry[] = [];
  readonly request: NonNullable<GenerationRequest["logprobs"]>;

  private constructor(top: number) {
    this.request = { top, sink: (e) => (this.all.push(e), this.pending.push(e)) };
  }

  /** Undefined unless asked for; a 400 for a bad `top_logprobs` (0 to 20, as OpenAI allows). */
  static of(logprobs: unknown, top: unknown): Logprobs | undefined {
    if (top !== undefined && top !== null && (!Number.isInteger(top) || (top as number) < 0 || (top as number) > 20)) {
      throw new RuntimeError("BAD_REQUEST", "top_logprobs must be an integer from 0 to 20");
    }
    if (logprobs !== true) {
      if (top) throw new RuntimeError("BAD_REQUEST", "top_logprobs needs logprobs: true");
      return undefined;
    }
    return new Logprobs((top as number | undefined) ?? 0);
  }

  drain(): LogprobEntry[] {
    const d = this.pending;
    this.pending = [];
    return d;
  }
}
