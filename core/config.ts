/**
 * Settings, resolved once: flag > MF_* environment variable > config file > default. With cli/, the only
 * place that reads process.env or the home directory; everything below receives a resolved Config.
 */
import { homedir } from "node:os";
import { join } from "node:path";

export interface Config {
  /** local store root (MF_MODELS), default ~/.mf/models */
  models: string;
  /** runtime server address host:port (MF_HOST), default 127.0.0.1:11434 */
  host: string;
  /** mf's home (~/.mf): keys, upload state */
  home: string;
  /** MF_KEEP_ALIVE, default "5m" */
  keepAlive: string;
  /** MF_MAX_LOADED_MODELS */
  maxLoadedModels: number;
  /** MF_NUM_PARALLEL */
  numParallel: number;
  /** MF_MAX_QUEUE */
  maxQueue: number;
  /** MF_THREADS (`mf serve --threads`): CPU threads per model; undefined: the thread policy */
  threads: number | undefined;
  /** MF_ORIGINS, extra allowed CORS origins */
  origins: string[];
  /** MF_KEY, the client's private key */
  key: string;
  /** MF_DEBUG / --verbose */
  verbose: boolean;
  /** MF_CREATE_ROOT / `mf serve --create-root`: the only directory /api/create may read files from (none when unset) */
  createRoot: string | undefined;
  /** MF_ENGINE_DIR: where `mf engine build` puts the engine it builds, and `mf serve` looks for it; default ~/.mf/engine */
  engineDir: string;
  /** MF_METRICS / `mf serve --metrics`: Prometheus metrics at GET /metrics; default off */
  metrics: boolean;
  /** MF_METRICS_ADDR / `mf serve --metrics-addr`: serve them on this HOST:PORT instead of the API's (turns them on) */
  metricsAddr: string | undefined;
  /** MF_REGISTRY / `mf serve --registry`: the registry `mf serve` pulls a missing model from on demand (none when unset) */
  registry: string | undefined;
  /** MF_PULL_TIMEOUT / `mf serve --pull-timeout`: how long a request waits for its on-demand pull before a 503; default "30s" */
  pullTimeout: string;
  /**
   * MF_FLASH_ATTENTION / `mf serve --flash-attention`: llama.cpp's flash attention, as given (auto, on, off;
   * parseFlashAttention reads it); default "auto"
   */
  flashAttention: string;
}

/** llama.cpp's flash attention: "auto" lets llama.cpp use it wherever the backend runs it (llama-server's default) */
export type FlashAttention = "auto" | "on" | "off";

/**
 * MF_FLASH_ATTENTION's or `--flash-attention`'s value: auto, on or off, also as 1/0, true/false, yes/no
 * (OLLAMA_FLASH_ATTENTION's habit); anything else throws, naming `from`.
 */
export function parseFlashAttention(v: string, from = "MF_FLASH_ATTENTION"): FlashAttention {
  const s = v.trim().toLowerCase();
  if (s === "auto" || s === "") return "auto";
  if (/^(on|1|true|yes)$/.test(s)) return "on";
  if (/^(off|0|false|no)$/.test(s)) return "off";
  throw new Error(`${from} takes auto, on or off, not ${JSON.stringify(v)}`);
}

export type ConfigFlags = Partial<Config>;

export interface ConfigSources {
  flags?: ConfigFlags;
  env?: Record<string, string | undefined>;
  file?: ConfigFlags;
  home?: string;
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** a thread count: a whole number ≥ 1 (0, or anything else, is no setting) */
function count(v: string | undefined): number | undefined {
  const n = num(v);
  return n !== undefined && n >= 1 ? Math.floor(n) : undefined;
}

function bool(v: string | undefined): boolean | undefined {
  if (v === undefined || v === "") return undefined;
  return /^(1|true|t|yes|on)$/i.test(v);
}

function list(v: string | undefined): string[] | undefined {
  if (v === undefined || v.trim() === "") return undefined;
  return v.split(",").map((s) => s.trim()).filter(Boolean);
}

function pick<T>(...vals: (T | undefined)[]): T {
  for (const v of vals) if (v !== undefined) return v;
  throw new Error("config: no default");
}

export function resolveConfig(src: ConfigSources = {}): Config {
  const env = src.env ?? process.env;
  const flags = src.flags ?? {};
  const file = src.file ?? {};
  const home = pick(flags.home, env.MF_HOME || undefined, file.home, join(src.home ?? homedir(), ".mf"));
  return {
    home,
    models: pick(flags.models, env.MF_MODELS || undefined, file.models, join(home, "models")),
    host: pick(flags.host, env.MF_HOST || undefined, file.host, "127.0.0.1:11434"),
    keepAlive: pick(flags.keepAlive, env.MF_KEEP_ALIVE || undefined, file.keepAlive, "5m"),
    maxLoadedModels: pick(flags.maxLoadedModels, num(env.MF_MAX_LOADED_MODELS), file.maxLoadedModels, 3),
    numParallel: pick(flags.numParallel, num(env.MF_NUM_PARALLEL), file.numParallel, 1),
    maxQueue: pick(flags.maxQueue, num(env.MF_MAX_QUEUE), file.maxQueue, 512),
    threads: flags.threads ?? count(env.MF_THREADS) ?? file.threads,
    origins: pick(flags.origins, list(env.MF_ORIGINS), file.origins, []),
    key: pick(flags.key, env.MF_KEY || undefined, file.key, join(home, "id_ed25519")),
    verbose: pick(flags.verbose, bool(env.MF_DEBUG), file.verbose, false),
    createRoot: flags.createRoot ?? (env.MF_CREATE_ROOT || undefined) ?? file.createRoot,
    engineDir: pick(flags.engineDir, env.MF_ENGINE_DIR || undefined, file.engineDir, join(home, "engine")),
    metrics: pick(flags.metrics, bool(env.MF_METRICS), file.metrics, false),
    metricsAddr: flags.metricsAddr ?? (env.MF_METRICS_ADDR || undefined) ?? file.metricsAddr,
    registry: flags.registry ?? (env.MF_REGISTRY || undefined) ?? file.registry,
    pullTimeout: pick(flags.pullTimeout, env.MF_PULL_TIMEOUT || undefined, file.pullTimeout, "30s"),
    flashAttention: pick(flags.flashAttention, env.MF_FLASH_ATTENTION || undefined, file.flashAttention, "auto"),
  };
}
