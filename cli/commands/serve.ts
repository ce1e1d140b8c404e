/**
 * `mf serve`: the Ollama API on MF_HOST (default 127.0.0.1:11434) over the store MF_MODELS, inference by
 * node-llama-cpp. `startRuntime` is shared with `mf demo`. With `--registry URL` (MF_REGISTRY) a model of
 * that registry that the store lacks is pulled when a request names it (runtime/server/on-demand.ts, built
 * here over the same registry client and credentials as /api/pull).
 */
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { type Config, parseFlashAttention } from "../../core/config.js";
import type { LocalStore } from "../../core/store.js";
import { parseKeepAlive } from "../../runtime/options.js";
import { Scheduler } from "../../runtime/scheduler.js";
import { type RuntimeServer, createRuntimeServer, hostOf } from "../../runtime/server/app.js";
import { parseDuration } from "../../registry/server/units.js";
import { RegistryClient } from "../../registry/client/index.js";
import { pullPushRoutes } from "../../runtime/server/routes/pull-push.js";
import { onDemandPulls, registryBase } from "../../runtime/server/on-demand.js";
import { pullPolicy } from "../verify.js";
import { cliContext } from "../context.js";
import { cliAuthenticator } from "../credentials.js";
import { listenMetrics, metricsRegistry, type MetricsListener } from "../metrics.js";

export interface StartRuntimeOptions {
  config: Config;
  store: LocalStore;
  homeDir: string;
  /** "auto": use a GPU when node-llama-cpp finds one; false: CPU only */
  gpu: "auto" | false;
  /** CPU threads per model (default: config.threads, then the thread policy) */
  threads?: number;
  /** ssh key for /api/pull and /api/push to registries with keys (default: config.key) */
  key?: string;
  /** pull on demand: a missing model of this registry is pulled when a request names it (`--registry`) */
  onDemand?: { registry: string; timeoutMs: number };
}

/** The started server; `close(graceMs)` lets answers in flight finish for up to that long first. */
export interface StartedRuntime {
  app: RuntimeServer;
  address: string;
  /** where GET /metrics is served (config.metrics / metricsAddr); undefined: metrics off */
  metricsAddress?: string;
  close(graceMs?: number): Promise<void>;
}

/** mf's version, from package.json (beside the sources, or one level above dist/). */
export function mfVersion(): string {
  for (const rel of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "mf" && pkg.version) return pkg.version;
    } catch {
      // try the next place
    }
  }
  return "0.0.0";
}

/** Builds and starts the runtime server; resolves once it listens. */
export async function startRuntime(o: StartRuntimeOptions): Promise<StartedRuntime> {
  let app: FastifyInstance | undefined;
  let flashAttention: ReturnType<typeof parseFlashAttention>;
  try {
    flashAttention = parseFlashAttention(o.config.flashAttention);
  } catch (e) {
    throw new MfError("BAD_REQUEST", (e as Error).message);
  }
  const { pullConverter } = await import("../../builder/formats/index.js");
  const registry = new RegistryClient({ authenticate: cliAuthenticator(o.key), convert: pullConverter });
  // loaded here, not at the top: every other command starts without the native binding
  const { createLlamaEngine } = await import("../../runtime/engine/llama.js");
  const { chooseEngine } = await import("../../runtime/engine/binding.js");
  const binding = await chooseEngine({ dir: o.config.engineDir, gpu: o.gpu });
  const threads = o.threads ?? o.config.threads;
  const engine = createLlamaEngine({
    gpu: o.gpu,
    threads,
    flashAttention,
    engine: binding,
    log: (level, msg) => app?.log[level === "info" ? "debug" : level](`llama.cpp: ${msg}`),
    notice: (level, msg) => app?.log[level](msg),
  });
  const scheduler = new Scheduler({
    engine,
    maxLoaded: o.config.maxLoadedModels,
    numParallel: o.config.numParallel,
    maxQueue: o.config.maxQueue,
    defaultKeepAliveMs: parseKeepAlive(o.config.keepAlive) ?? 300_000,
    log: (m) => app?.log.info(m),
  });
  // metrics on: GET /metrics on the API's address, or alone on metricsAddr (prom-client is loaded only then)
  const metrics = o.config.metrics || o.config.metricsAddr !== undefined
    ? (await import("../../runtime/server/metrics.js")).createRuntimeMetrics(await metricsRegistry())
    : undefined;
  const runtime = createRuntimeServer({
    store: o.store,
    engine,
    scheduler,
    config: o.config,
    logger: { level: o.config.verbose ? "debug" : "info" },
    version: mfVersion(),
    homeDir: o.homeDir,
    threads,
    // /api/pull runs under the config file's verify rules, as `mf pull` does
    registryRoutes: pullPushRoutes(registry, (ref) => pullPolicy(o.config.home, ref, {})),
    // the same client as /api/pull: an on-demand pull and an /api/pull of one model share their downloads
    pullOnDemand: o.onDemand ? onDemandPulls({ registry: o.onDemand.registry, client: registry, timeoutMs: o.onDemand.timeoutMs }) : undefined,
    createRoot: o.config.createRoot,
    metrics,
    serveMetrics: o.config.metricsAddr === undefined,
  });
  app = runtime;
  app.log.info({ engine: binding.kind }, `engine: ${binding.description}`);
  const host = hostOf(o.config.host);
  const port = Number(/:(\d+)$/.exec(o.config.host)?.[1] ?? 11434);
  let address: string;
  let metricsListener: MetricsListener | undefined;
  try {
    address = await app.listen({ host, port });
    if (metrics && o.config.metricsAddr !== undefined) metricsListener = await listenMetrics(metrics.registry, o.config.metricsAddr);
  } catch (e) {
    await app.close();
    await engine.dispose();
    await registry.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new MfError("SERVICE_UNAVAILABLE", `${o.config.host} is in use: is another server running? (set MF_HOST to use another address)`);
    throw e;
  }
  return {
    app: runtime,
    address,
    metricsAddress: metrics ? `${metricsListener?.address ?? address}/metrics` : undefined,
    close: async (graceMs = 0) => {
      await metricsListener?.close();
      await runtime.shutdown(graceMs);
      await engine.dispose();
      await registry.close();
    },
  };
}

/**
 * Serves until SIGINT or SIGTERM, then lets the answers in flight finish for up to `graceMs` (new
 * requests get 503) before closing, as `mf registry serve` does. A second signal ends at once.
 */
export async function serveUntilSignal(close: (graceMs?: number) => Promise<void>, graceMs = DEFAULT_SHUTDOWN_GRACE_MS, name = "mf serve"): Promise<void> {
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      process.stderr.write(`${name}: ${signal}: finishing in-flight answers (up to ${graceMs} ms; again to stop now)\n`);
      void close(graceMs).finally(done);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** `--create-root DIR` as an absolute path to an existing directory. */
function createRoot(dir: string | undefined): string | undefined {
  if (dir === undefined || dir === "") return undefined;
  const abs = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new MfError("BAD_REQUEST", `--create-root ${dir}: not a directory`);
  return abs;
}

/** `--registry` and `--pull-timeout`, checked before the server starts; undefined without a registry. */
function pullOnDemandOf(registry: string | undefined, timeout: string): StartRuntimeOptions["onDemand"] {
  const timeoutMs = parseDuration(timeout);
  if (!(timeoutMs > 0)) throw new MfError("BAD_REQUEST", `--pull-timeout ${timeout}: give a duration above zero (e.g. 30s)`);
  if (registry === undefined || registry === "") return undefined;
  const u = registryBase(registry);
  return { registry: `${u.protocol}//${u.host}`, timeoutMs };
}

interface ServeArgs {
  host?: string;
  "create-root"?: string;
  "shutdown-grace"?: string;
  metrics?: boolean;
  "metrics-addr"?: string;
  models?: string;
  gpu?: boolean;
  threads?: number;
  verbose?: boolean;
  key?: string;
  registry?: string;
  "pull-timeout"?: string;
  "flash-attention"?: string;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: ["serve", "start"],
  describe: "serve the Ollama API over the local store (MF_HOST, default 127.0.0.1:11434)",
  builder: (y) =>
    y
      .option("host", { type: "string", describe: "HOST:PORT to listen on (MF_HOST)" })
      .option("models", { type: "string", describe: "store directory (MF_MODELS)" })
      .option("gpu", { type: "boolean", default: true, describe: "use a GPU when one is found (--no-gpu: CPU only)" })
      .option("threads", { type: "number", describe: "CPU threads per model, unless a request sets num_thread (MF_THREADS; default or 0: the physical cores this process may use)" })
      .option("key", { type: "string", describe: "ssh private key for /api/pull and /api/push to registries with keys (MF_KEY)" })
      .option("create-root", { type: "string", describe: "the only directory /api/create may read files from (MF_CREATE_ROOT); unset: none, clients upload blobs" })
      .option("registry", { type: "string", describe: "pull a model of this registry (http(s)://host[:port]) that the store lacks when a request names it (MF_REGISTRY); credentials: `mf login`, the ssh key" })
      .option("pull-timeout", { type: "string", describe: "how long a request waits for its on-demand pull before a 503 with Retry-After; the pull goes on (MF_PULL_TIMEOUT, default 30s)" })
      .option("flash-attention", {
        type: "string",
        choices: ["auto", "on", "off"],
        describe: "llama.cpp's flash attention (MF_FLASH_ATTENTION; default auto: wherever the backend and the model run it, as llama-server)",
      })
      .option("shutdown-grace", { type: "string", default: "10s", describe: "on SIGINT/SIGTERM, let answers in flight finish for this long" })
      .option("metrics", { type: "boolean", describe: "Prometheus metrics at GET /metrics on the API's address (MF_METRICS)" })
      .option("metrics-addr", { type: "string", describe: "HOST:PORT to serve GET /metrics on instead of the API's address; turns metrics on (MF_METRICS_ADDR)" })
      .check((a) => {
        const t = a.threads as number | undefined;
        if (t !== undefined && !(Number.isInteger(t) && t >= 0)) throw new Error("--threads takes a whole number of threads (0: the default)");
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = cliContext({ models: args.models, verbose: args.verbose });
    const graceMs = parseDuration(args["shutdown-grace"] ?? "10s");
    const config = {
      ...ctx.config,
      host: args.host ?? ctx.config.host,
      createRoot: createRoot(args["create-root"] ?? ctx.config.createRoot),
      metrics: args.metrics ?? ctx.config.metrics,
      metricsAddr: args["metrics-addr"] ?? ctx.config.metricsAddr,
      flashAttention: args["flash-attention"] ?? ctx.config.flashAttention,
    };
    // --threads beats MF_THREADS; --threads 0 asks for the policy whatever MF_THREADS says
    if (args.threads !== undefined) config.threads = args.threads >= 1 ? args.threads : undefined;
    const onDemand = pullOnDemandOf(args.registry ?? ctx.config.registry, args["pull-timeout"] ?? ctx.config.pullTimeout);
    const rt = await startRuntime({ config, store: ctx.store, homeDir: ctx.homeDir, gpu: args.gpu === false ? false : "auto", key: args.key, onDemand });
    const extra = `${config.createRoot ? `, create root ${config.createRoot}` : ""}${onDemand ? `, pulling missing models of ${onDemand.registry} on demand` : ""}`;
    process.stdout.write(
      `mf serve: listening on ${rt.address} (store ${ctx.store.root}${extra})\n` +
        (rt.metricsAddress ? `mf serve: metrics at ${rt.metricsAddress}\n` : ""),
    );
    await serveUntilSignal(rt.close, graceMs);
  },
};
