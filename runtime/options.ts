/**
 * Request options → what the engine runs with. Defaults (Ollama's) < the image's PARAMETERs < the
 * request's `options`. Options that change how a model is loaded (`num_ctx`, `num_batch`, `num_thread`,
 * `draft_num_predict`, which Ollama passes to its runner at load) form the load key; the rest drive sampling. Options the engine cannot apply are named in `ignored`, so
 * the server can log each once.
 */
import { RuntimeError } from "../core/errors.js";
import { validateOptions } from "../grammar/modelfile/params.js";
import { DEFAULT_DRAFT_TOKENS, MAX_DRAFT_TOKENS, type SamplingOptions } from "./engine/types.js";

export const DEFAULT_NUM_CTX = 2048;

export interface LoadOptions {
  numCtx: number;
  numBatch: number;
  numThread: number | undefined;
  /** tokens a DRAFT model drafts ahead, 0 to MAX_DRAFT_TOKENS (0: the draft is not loaded) */
  draftNumPredict: number;
}

export interface RunOptions {
  load: LoadOptions;
  sampling: SamplingOptions;
  /** num_predict (-1: until the context is full) */
  numPredict: number;
  numKeep: number;
  stop: string[];
  /** option names given but not applied by the engine */
  ignored: string[];
}

/** Options node-llama-cpp has no knob for (beyond the table's `ignored` legacy ones). */
const NOT_APPLIED = new Set([
  "typical_p", "tfs_z", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline", "numa", "num_gqa", "num_gpu",
  "main_gpu", "use_mmap", "use_mlock", "low_vram", "f16_kv", "logits_all", "vocab_only", "embedding_only",
  "rope_frequency_base", "rope_frequency_scale",
]);

/** Validates a request's `options` (400 on a wrong type); warnings are returned for the log. */
export function requestOptions(obj: unknown): { options: Record<string, unknown>; warnings: string[] } {
  const r = validateOptions(obj);
  if (!r.ok) throw new RuntimeError("BAD_REQUEST", r.errors.join("; "));
  return { options: r.options, warnings: r.warnings };
}

const num = (v: unknown, d: number): number => (typeof v === "number" && Number.isFinite(v) ? v : d);

export function resolveRunOptions(
  modelParams: Record<string, unknown>,
  request: Record<string, unknown>,
  random: () => number = () => Math.floor(Math.random() * 0x7fffffff),
): RunOptions {
  const o: Record<string, unknown> = { ...modelParams, ...request };
  const seed = num(o.seed, -1);
  const stop = Array.isArray(o.stop) ? (o.stop as unknown[]).filter((s): s is string => typeof s === "string") : [];
  return {
    load: {
      numCtx: Math.max(16, num(o.num_ctx, DEFAULT_NUM_CTX)),
      numBatch: Math.max(1, num(o.num_batch, 512)),
      numThread: typeof o.num_thread === "number" && o.num_thread > 0 ? o.num_thread : undefined,
      draftNumPredict: Math.min(MAX_DRAFT_TOKENS, Math.max(0, num(o.draft_num_predict, DEFAULT_DRAFT_TOKENS))),
    },
    sampling: {
      temperature: Math.max(0, num(o.temperature, 0.8)),
      topK: Math.max(0, num(o.top_k, 40)),
      topP: num(o.top_p, 0.9),
      minP: num(o.min_p, 0),
      seed: seed < 0 ? random() : seed,
      repeat: {
        penalty: num(o.repeat_penalty, 1.0),
        lastN: num(o.repeat_last_n, 64),
        presencePenalty: num(o.presence_penalty, 0),
        frequencyPenalty: num(o.frequency_penalty, 0),
      },
    },
    numPredict: num(o.num_predict, -1),
    numKeep: Math.max(0, num(o.num_keep, 4)),
    stop,
    ignored: Object.keys(o).filter((k) => NOT_APPLIED.has(k)),
  };
}

/** The most prompt tokens a context of `numCtx` takes, leaving a quarter of it (at most 256) to answer. */
export function promptBudget(numCtx: number): number {
  return Math.max(1, numCtx - Math.max(1, Math.min(256, Math.floor(numCtx / 4))));
}

/**
 * Fits prompt tokens into a context of `numCtx` (leaving room to generate) the way Ollama's runner does:
 * keep the first `numKeep` tokens and the newest ones, dropping from the middle.
 */
export function fitPrompt(tokens: number[], numCtx: number, numKeep: number): number[] {
  const max = promptBudget(numCtx);
  if (tokens.length <= max) return tokens;
  const keep = Math.min(numKeep, Math.floor(max / 2));
  return [...tokens.slice(0, keep), ...tokens.slice(tokens.length - (max - keep))];
}

/** keep_alive (seconds or a Go duration string) → milliseconds; negative = forever (Infinity). */
export function parseKeepAlive(v: unknown): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "number" && Number.isFinite(v)) return v < 0 ? Infinity : v * 1000;
  if (typeof v === "string") {
    const s = v.trim();
    if (/^-?\d+(\.\d+)?$/.test(s)) return parseKeepAlive(Number(s));
    const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
    const neg = s.startsWith("-");
    const body = neg ? s.slice(1) : s;
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    let total = 0;
    let at = 0;
    let m: RegExpExecArray | null;
    re.lastIndex = 0;
    while ((m = re.exec(body))) {
      total += Number(m[1]) * unit[m[2]!]!;
      at = re.lastIndex;
    }
    if (at === body.length && at > 0) return neg ? Infinity : total;
  }
  throw new RuntimeError("BAD_REQUEST", `invalid keep_alive ${JSON.stringify(v)}: use seconds or a duration such as "5m"`);
}
