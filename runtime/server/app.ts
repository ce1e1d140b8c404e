/**
 * `createRuntimeServer`: the Ollama API as a fastify instance that never listens (cli/ does). Every
 * request body is read as JSON whatever its content type (curl's `-d` sends form-encoded headers), one
 * error handler writes `{"error": "..."}`, and the guard limits hosts and origins. Closing the server
 * closes the scheduler it was given (unloading every model).
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
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import type { Config } from "../../core/config.js";
import type { LocalStore } from "../../core/store.js";
import type { Engine } from "../engine/types.js";
import { TemplateCache } from "../prompt/index.js";
import type { Scheduler } from "../scheduler.js";
import { installGuard } from "./guard.js";
import { sendError } from "./http.js";
import type { RuntimeDeps } from "./infer.js";
import { ModelResolver } from "./models.js";
import { chatRoute } from "./routes/chat.js";
import { createRoutes } from "./routes/create.js";
import { embedRoutes } from "./routes/embed.js";
import { generateRoute } from "./routes/generate.js";
import { modelRoutes } from "./routes/models.js";
import { openaiRoutes } from "./compat/openai.js";
import { anthropicRoutes } from "./compat/anthropic.js";

export interface RuntimeServerOptions {
  store: LocalStore;
  engine: Engine;
  scheduler: Scheduler;
  config: Pick<Config, "host" | "origins">;
  /** fastify's pino logger options (true: info level) */
  logger?: FastifyServerOptions["logger"];
  version?: string;
  /** home directory for `~` in a Modelfile sent to /api/create, and its base for relative paths */
  homeDir: string;
  /** default CPU threads per model context (num_thread overrides) */
  threads?: number;
  /**
   * Hook for the registry-client issue: registers `POST /api/pull` and `POST /api/push` on the app with
   * the same dependencies (store, logger). Absent: those routes answer 404.
   */
  registryRoutes?: (app: FastifyInstance, deps: { store: LocalStore }) => void;
}

export function createRuntimeServer(opts: RuntimeServerOptions): FastifyInstance {
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
    const status = (err as { statusCode?: number }).statusCode;
    if (!status || status >= 500) req.log.error({ err }, "request failed");
    return sendError(reply, err);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `${req.method} ${req.url}: 404 page not found` }));

  const warned = new Set<string>();
  const deps: RuntimeDeps = {
    store: opts.store,
    engine: opts.engine,
    scheduler: opts.scheduler,
    models: new ModelResolver(opts.store),
    templates: new TemplateCache(),
    log: app.log,
    threads: opts.threads,
    version: opts.version ?? "0.0.0",
    homeDir: opts.homeDir,
    warnOnce: (m) => {
      if (warned.has(m)) return;
      warned.add(m);
      app.log.warn(m);
    },
  };
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
    await opts.scheduler.close();
  });
  return app;
}

/** The host part of `host:port` (`[::1]:11434` → `::1`). */
export function hostOf(addr: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(addr);
  if (m) return m[1]!;
  const i = addr.lastIndexOf(":");
  return i > 0 && !addr.slice(0, i).includes(":") ? addr.slice(0, i) : addr;
}
