/**
 * `createRegistryServer`: the OCI distribution API as a fastify instance built from injected parts. It
 * never listens (cli/ does). Blob bodies are never buffered: every content type passes the raw request
 * stream through, and blob routes have no request timeout, only the socket idle timeout.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { MfError, ociEnvelope, toMfError } from "../../core/errors.js";
import { allowAll, type AuthHook } from "./auth.js";
import type { RegistryContext } from "./context.js";
import { RepoStore } from "./repo-store.js";
import { checkParams, matchRoute, type Match } from "./routes.js";
import { Signer } from "./signing.js";
import type { StorageDriver } from "./storage/driver.js";
import { UploadSessions, type FaultHook } from "./upload-sessions.js";

export interface RegistryServerOptions {
  storage: StorageDriver;
  /** HMAC key for upload locations and signed blob URLs (≥ 16 bytes; the CLI keeps it in --secret-file) */
  secret: string | Uint8Array;
  auth?: AuthHook;
  /** a pino-compatible logger, or true for fastify's own (JSON lines on stdout); default: silent */
  logger?: FastifyBaseLogger | boolean;
  /** ms since the epoch; injected for tests */
  clock?: () => number;
  /** how clients reach the server (`https://registry.example`); default: the request's Host / X-Forwarded-* */
  publicUrl?: string;
  /** blob GET answers 307 to a signed URL (default true; what stock Ollama needs) */
  redirect?: boolean;
  /** manifest and blob deletes (default true; off → 405 UNSUPPORTED) */
  allowDelete?: boolean;
  /** an upload session idle this long is removed (default 24 h) */
  uploadExpiryMs?: number;
  /** while an upload PATCH streams, its offset is persisted every this many bytes (default 32 MiB; S3: at part ends) */
  uploadCheckpointBytes?: number;
  /** test-only: called at each step of finishing an upload (upload-sessions.ts UPLOAD_FAULT_POINTS) */
  fault?: FaultHook;
  /** manifests larger than this are refused with 413 (default 8 MiB) */
  manifestMaxBytes?: number;
  /** lifetime of a signed blob URL (default 15 min) */
  signedUrlTtlMs?: number;
  /** a connection silent this long is closed (default 2 min) */
  idleTimeoutMs?: number;
  /** non-blob requests must finish within this (default 5 min) */
  requestTimeoutMs?: number;
  /** how often expired upload sessions are swept (default 10 min; 0: never) */
  sweepIntervalMs?: number;
  /** TLS: PEM key and certificate */
  https?: { key: string | Buffer; cert: string | Buffer };
}

export interface RegistryServer extends FastifyInstance {
  /** Removes expired upload sessions now; returns how many. */
  sweepUploads(): Promise<number>;
}

export function createRegistryServer(options: RegistryServerOptions): RegistryServer {
  const clock = options.clock ?? Date.now;
  const store = new RepoStore(options.storage);
  const uploads = new UploadSessions({
    storage: options.storage,
    store,
    clock,
    expiryMs: options.uploadExpiryMs ?? 24 * 3600_000,
    checkpointBytes: options.uploadCheckpointBytes,
    fault: options.fault,
  });
  const ctx: RegistryContext = {
    store,
    uploads,
    signer: new Signer(options.secret),
    auth: options.auth ?? allowAll,
    clock,
    settings: {
      publicUrl: options.publicUrl,
      redirect: options.redirect ?? true,
      allowDelete: options.allowDelete ?? true,
      manifestMaxBytes: options.manifestMaxBytes ?? 8 << 20,
      signedUrlTtlMs: options.signedUrlTtlMs ?? 15 * 60_000,
    },
  };
  const requestTimeoutMs = options.requestTimeoutMs ?? 300_000;

  const app = Fastify({
    ...(typeof options.logger === "object"
      ? { loggerInstance: options.logger }
      : { logger: options.logger === true ? { serializers: { req: requestForLog } } : false }),
    ...(options.https ? { https: options.https } : {}),
    requestTimeout: 0,
    connectionTimeout: options.idleTimeoutMs ?? 120_000,
    exposeHeadRoutes: false,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  // Bodies are handlers' business: blobs stream from request.raw, manifests are read with a cap.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null, undefined));

  const matches = new WeakMap<FastifyRequest, Match>();
  app.addHook("onRequest", async (request, reply) => {
    const path = request.url.split("?")[0]!;
    if (path.startsWith("/v2")) reply.header("Docker-Distribution-API-Version", "registry/2.0");
    let match: Match | undefined;
    try {
      match = matchRoute(request.method, path);
    } catch {
      return; // the dispatcher reports it
    }
    matches.set(request, match);
    if (!match.route.blob && requestTimeoutMs > 0) {
      const timer = setTimeout(() => request.raw.destroy(new Error("request timeout")), requestTimeoutMs);
      timer.unref();
      reply.raw.once("close", () => clearTimeout(timer));
    }
  });

  app.get("/healthz", async (_request, reply) => {
    reply.code(200).send({ status: "ok" });
  });
  ctx.auth.register?.(app);

  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    const match = matches.get(request) ?? matchRoute(request.method, request.url.split("?")[0]!);
    const params = checkParams({ route: match.route, params: match.params.map(decode) });
    await match.route.handler(ctx, request, reply, ...params);
    return reply;
  };
  const methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"] as const;
  app.route({ method: [...methods], url: "/v2", handler: dispatch });
  app.route({ method: [...methods], url: "/v2/*", handler: dispatch });
  app.route({ method: [...methods], url: "/_mf/*", handler: dispatch });

  app.setErrorHandler((err, request, reply) => {
    const e = asMfError(err);
    if (e.status >= 500) request.log.error({ err }, "registry request failed");
    if (reply.sent || reply.raw.headersSent) return;
    if (!request.raw.complete) {
      // The body was not (fully) read: discard what still arrives and close after answering, so the
      // client sees the error now instead of blocking on a body nobody reads.
      reply.header("Connection", "close");
      request.raw.resume();
    }
    reply.code(e.status).type("application/json").send(ociEnvelope(e));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).type("application/json").send(ociEnvelope(new MfError("NAME_UNKNOWN", `no endpoint at ${request.url.slice(0, 200)}`)));
  });

  let sweeper: NodeJS.Timeout | undefined;
  const sweepEvery = options.sweepIntervalMs ?? 10 * 60_000;
  app.addHook("onReady", async () => {
    if (sweepEvery > 0) {
      sweeper = setInterval(() => {
        uploads.sweep().catch((e) => app.log.warn({ err: e }, "upload sweep failed"));
      }, sweepEvery);
      sweeper.unref();
    }
  });
  app.addHook("onClose", async () => {
    if (sweeper) clearInterval(sweeper);
    await uploads.drain();
  });

  const server = app as RegistryServer;
  server.decorate("sweepUploads", () => uploads.sweep());
  return server;
}

/** What the request log shows: no signatures (blob-URL `sig`, upload-location MACs), never headers. */
function requestForLog(request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, url: redactUrl(request.url), host: request.host, remoteAddress: request.ip };
}

export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  const path = (q < 0 ? url : url.slice(0, q)).replace(/(\/blobs\/uploads\/[0-9a-f-]{36})\.[A-Za-z0-9_-]+/g, "$1.…");
  if (q < 0) return path;
  const params = new URLSearchParams(url.slice(q + 1));
  for (const k of ["sig", "signature", "token", "access_token", "password"]) if (params.has(k)) params.set(k, "…");
  return `${path}?${params.toString()}`;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Fastify's own errors (bad headers, malformed requests) keep their 4xx; everything else via toMfError. */
function asMfError(err: unknown): MfError {
  if (err instanceof MfError) return err;
  const status = (err as { statusCode?: number }).statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new MfError("BAD_REQUEST", (err as Error).message, { cause: err });
  }
  return toMfError(err);
}
