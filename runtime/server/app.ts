/**
 * `createRuntimeServer`: the Ollama API as a fastify instance that never listens (cli/ does). Every
 * request body is read as JSON whatever its content type (curl's `-d` sends form-encoded headers), one
 * error handler writes `{"error": "..."}` (and logs a server's fault at error level with its stack, a
 * client's at info without), and the guard limits hosts and origins. Closing the server closes the
 * scheduler it was given (unloading every model); `shutdown(graceMs)` first lets the answers in flight
 * finish for up to `graceMs`, answering new requests 503 meanwhile.
 *
 * Route table:
 *   GET|HEAD /                     Ollama is running
 *   POST /api/generate             routes/generate.ts
 *   POST /api/chat                 routes/chat.ts
 *   POST /api/embed, /api/embeddings  routes/embed.ts
 *   POST /api/create, HEAD|POST /api/blobs/:digest  routes/create.ts
 *   GET /api/tags, POST /api/show, POST /api/copy, DELETE /api/delete, GET /api/ps, GET /api/version  routes/models.ts
 *   /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /v1/responses  compat/openai.ts
 *   POST /v1/messages              compat/anthropic.ts
 *   POST /api/pull, /api/push      not here: registered by `registryRoutes` (the registry-client issue)
 *   GET /metrics                   with `metrics` and `serveMetrics` (metrics.ts; Prometheus)
 *
 * With `pullOnDemand`, every route that names a model (the resolver in models.ts) pulls a model of the
 * configured registry that the store lacks before answering (on-demand.ts).
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import type { Config } from "../../core/config.js";
import type { LocalStore } from "../../core/store.js";
import { type BudgetLimits, TemplateBudget } from "../../grammar/template/index.js";
import type { Engine } from "../engine/types.js";
import { TemplateCache } from "../prompt/index.js";
import type { Scheduler } from "../scheduler.js";
import { installGuard } from "./guard.js";
import { logFailure, sendError } from "./http.js";
import type { RuntimeDeps } from "./infer.js";
import { ModelResolver } from "./models.js";
import { chatRoute } from "./routes/chat.js";
import { createRoutes } from "./routes/create.js";
import { embedRoutes } from "./routes/embed.js";
import { generateRoute } from "./routes/generate.js";
import { modelRoutes } from "./routes/models.js";
import type { PullOnDemand } from "./on-demand.js";
import { openaiRoutes } from "./compat/openai.js";
import { anthropicRoutes } from "./compat/anthropic.js";
import type { RuntimeMetrics } from "./metrics.js";
import { WarnOnce } from "./warnings.js";

export interface RuntimeServerOptions {
  store: LocalStore;
  engine: Engine;
  scheduler: Scheduler;
  config: Pick<Config, "host" | "origins">;
  /** fastify's pino logger options (true: info level) */
  logger?: FastifyServerOptions["logger"];
  version?: string;
  /** home directory for `~` in a Modelfile sent to /api/create */
  homeDir: string;
  /**
   * The only directory /api/create may read files from (a `path`, FROM or ADAPTER paths; `--create-root`);
   * absent: it reads none, and clients upload files as blobs (POST /api/blobs/:digest).
   */
  createRoot?: string;
  /** what rendering the prompt of one request may cost (grammar/template/budget.ts; default DEFAULT_LIMITS) */
  templateLimits?: Partial<BudgetLimits>;
  /** default CPU threads per model context (num_thread overrides) */
  threads?: number;
  /**
   * Hook for the registry-client issue: registers `POST /api/pull` and `POST /api/push` on the app with
   * the same dependencies (store, logger). Absent: those routes answer 404.
   */
  registryRoutes?: (app: FastifyInstance, deps: { store: LocalStore }) => void;
  /** Prometheus metrics (metrics.ts, over a prom-client Registry made by the caller); default: none */
  metrics?: RuntimeMetrics;
  /** with `metrics`: also answer `GET /metrics` here (false: the caller serves them on another address) */
  serveMetrics?: boolean;
  /**
   * Pull on demand (`mf serve --registry`, built by `onDemandPulls` in on-demand.ts): a request naming a
   * model of that registry that the store lacks pulls it first. Absent: such a request is a 404.
   */
  pullOnDemand?: PullOnDemand;
}

export type RuntimeServer = FastifyInstance & {
  /**
   * Stops taking requests (new ones get 503), waits up to `graceMs` for those in flight, then unloads
   * the models (an answer still running ends with an `{"error"}` line) and closes.
   */
  shutdown(graceMs: number): Promise<void>;
};

/** After the grace period and the unload, how long answers get to write their last line. */
const LAST_LINE_MS = 2_000;

export function createRuntimeServer(opts: RuntimeServerOptions): RuntimeServer {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 64 << 20,
    forceCloseConnections: true,
    ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addHook("preValidation", async (req) => {
    if (req.body === undefined && (req.method === "POST" || req.method === "DELETE")) req.body = {};
  });
  app.setErrorHandler((err, req, reply) => {
    if (reply.sent || reply.raw.headersSent) return;
    logFailure(req.log, err);
    return sendError(reply, err);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `${req.method} ${req.url}: 404 page not found` }));

  const warnings = new WarnOnce((line) => app.log.warn(line));
  const onDemand = opts.pullOnDemand?.({ store: opts.store, log: app.log });
  const deps: RuntimeDeps = {
    store: opts.store,
    engine: opts.engine,
    scheduler: opts.scheduler,
    models: new ModelResolver(opts.store, onDemand),
    templates: new TemplateCache(),
    log: app.log,
    threads: opts.threads,
    version: opts.version ?? "0.0.0",
    homeDir: opts.homeDir,
    createRoot: opts.createRoot,
    templateBudget: () => new TemplateBudget(opts.templateLimits),
    warnOnce: (m) => warnings.warn(m),
    metrics: opts.metrics,
  };
  // first of the request hooks: a request refused while shutting down is counted too
  opts.metrics?.install(app, { scheduler: opts.scheduler, serve: opts.serveMetrics === true });

  // requests in flight, for shutdown; once it has begun, new ones get 503
  let draining = false;
  let inflight = 0;
  let onIdle: (() => void)[] = [];
  app.addHook("onRequest", async (_req, reply) => {
    if (draining) {
      reply.header("connection", "close");
      return reply.code(503).send({ error: "server is shutting down" });
    }
    inflight++;
    reply.raw.once("close", () => {
      if (--inflight === 0) for (const f of onIdle.splice(0)) f();
    });
  });
  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      if (inflight === 0) return resolve();
      const done = () => {
        clearTimeout(timer);
        onIdle = onIdle.filter((f) => f !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      onIdle.push(done);
    });
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (graceMs: number) =>
    (shuttingDown ??= (async () => {
      draining = true;
      await idle(graceMs);
      await opts.scheduler.close();
      await idle(LAST_LINE_MS);
      await app.close();
    })());

  installGuard(app, { bindHost: hostOf(opts.config.host), origins: opts.config.origins });
  modelRoutes(app, deps);
  generateRoute(app, deps);
  chatRoute(app, deps);
  embedRoutes(app, deps);
  createRoutes(app, deps);
  openaiRoutes(app, deps);
  anthropicRoutes(app, deps);
  opts.registryRoutes?.(app, { store: opts.store });
  app.addHook("onClose", async () => {
    onDemand?.close();
    await opts.scheduler.close();
  });
  app.decorate("shutdown", shutdown);
  return app as unknown as RuntimeServer;
}

/** The host part of `host:port` (`[::1]:11434` → `::1`). */
export function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (m) return m[1]!;
  const i = addr.lastIndexOf(":");
  return i > 0 && !addr.slice(0, i).includes(":") ? addr.slice(0, i) : addr;
}
