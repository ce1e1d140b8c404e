/**
 * `createRegistryServer`: the OCI distribution API as a fastify instance built from injected parts. It
 * never listens (cli/ does). Blob bodies are never buffered: every content type passes the raw request
 * stream through, and blob routes have no request timeout, only the socket idle timeout.
 */
import { isIP } from "node:net";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { MfError, ociEnvelope, toMfError } from "../../core/errors.js";
import { registerAudit, type AuditSink } from "./audit.js";
import { allowAll, type AuthHook } from "./auth.js";
import { authorize, sendJson, type RegistryContext, type RegistryExtension, type TagGuard } from "./context.js";
import { DEFAULT_PULL_RECORD_INTERVAL_MS, PullRecorder, registerPullRecords } from "./pulls.js";
import type { MirrorHook } from "./mirror-hook.js";
import { RepoStore } from "./repo-store.js";
import { checkParams, matchRoute, type Match } from "./routes.js";
import { normalizePublicUrl, Signer } from "./signing.js";
import type { RegistryMetrics } from "./metrics.js";
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
  /** how clients reach the server (`https://registry.example`); default: the request's Host (X-Forwarded-Host/Proto only from a trusted proxy) */
  publicUrl?: string;
  /**
   * proxies whose X-Forwarded-Host / -Proto / -For are believed: IP addresses, CIDR ranges, or `loopback`,
   * `linklocal`, `uniquelocal` (default: none; a client's own forwarded headers are ignored)
   */
  trustProxy?: string[];
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
  /**
   * accept a manifest whose non-distributable layers (OCI `nondistributable` types, Docker foreign
   * layers) were never pushed, when every one of their `urls` is http(s) and matches (default: off, such
   * a manifest is refused with MANIFEST_BLOB_UNKNOWN like any other missing blob)
   */
  allowForeignLayers?: RegExp;
  /** a connection silent this long is closed (default 2 min) */
  idleTimeoutMs?: number;
  /** non-blob requests must finish within this (default 5 min) */
  requestTimeoutMs?: number;
  /** how often expired upload sessions are swept (default 10 min; 0: never) */
  sweepIntervalMs?: number;
  /** a manifest's last pull is recorded at most this often (pulls.ts; retention's pulled-within); 0: never (default 1 h) */
  pullRecordIntervalMs?: number;
  /** told of every push, delete and denial (audit.ts); default: none */
  audit?: AuditSink;
  /** checks each tag a manifest PUT sets, before anything is stored (`--require-signed`: require-signed.ts) */
  tagGuard?: TagGuard;
  /** TLS: PEM key and certificate */
  https?: { key: string | Buffer; cert: string | Buffer };
  /** Prometheus metrics (metrics.ts, over a prom-client Registry made by the caller); default: none */
  metrics?: RegistryMetrics;
  /** with `metrics`: also answer `GET /metrics` here (false: the caller serves them on another address) */
  serveMetrics?: boolean;
  /** the web page at `/` and its read-only API under `/ui/api/`: `webPage()` of registry/server/ui; default: none */
  web?: RegistryExtension;
  /** a pull-through mirror of upstream registries (registry/server/mirror/) */
  mirror?: MirrorHook;
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
    onBytes: options.metrics?.received,
  });
  const ctx: RegistryContext = {
    store,
    uploads,
    signer: new Signer(options.secret),
    auth: options.auth ?? allowAll,
    clock,
    settings: {
      publicUrl: options.publicUrl === undefined ? undefined : normalizePublicUrl(options.publicUrl),
      redirect: options.redirect ?? true,
      allowDelete: options.allowDelete ?? true,
      manifestMaxBytes: options.manifestMaxBytes ?? 8 << 20,
      signedUrlTtlMs: options.signedUrlTtlMs ?? 15 * 60_000,
      allowForeignLayers: options.allowForeignLayers,
    },
    mirror: options.mirror,
    ...(options.tagGuard ? { tagGuard: options.tagGuard } : {}),
  };
  const requestTimeoutMs = options.requestTimeoutMs ?? 300_000;

  const app = Fastify({
    ...(typeof options.logger === "object"
      ? { loggerInstance: options.logger }
      : { logger: options.logger === true ? { serializers: { req: requestForLog } } : false }),
    ...(options.https ? { https: options.https } : {}),
    ...(options.trustProxy?.length ? { trustProxy: checkTrustProxy(options.trustProxy) } : {}),
    requestTimeout: 0,
    connectionTimeout: options.idleTimeoutMs ?? 120_000,
    exposeHeadRoutes: false,
    return503OnClosing: true,
    // A path fastify cannot decode (a malformed percent-escape such as /v2/%ff/tags/list) never reaches a
    // route: answer it here, in the API's envelope, with the error of the parameter it falls in.
    frameworkErrors: (err, request, reply) => {
      let e: MfError;
      try {
        const path = request.raw.url!.split("?")[0]!;
        const match = matchRoute(request.raw.method!, path);
        checkParams({ route: match.route, params: match.params.map(decode) });
        e = new MfError("BAD_REQUEST", `${err.message.slice(0, 300)}`);
      } catch (x) {
        e = asMfError(x);
      }
      sendError(request, reply, e);
    },
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

  options.metrics?.install(app, {
    uploads,
    storage: options.storage,
    serve: options.serveMetrics === true,
    guard: (request, reply) => authorize(ctx, request, reply, null, []),
  });
  if (options.audit) registerAudit(app, options.audit, store, clock);
  const pullInterval = options.pullRecordIntervalMs ?? DEFAULT_PULL_RECORD_INTERVAL_MS;
  if (pullInterval > 0) {
    registerPullRecords(app, new PullRecorder(options.storage, pullInterval, clock, (e) => app.log.warn({ err: e }, "recording a pull failed")));
  }
  app.get("/healthz", async (_request, reply) => {
    sendJson(reply, 200, { status: "ok" });
  });
  ctx.auth.register?.(app);

  const dispatch = async (request: FastifyRequest, reply: FastifyReply) => {
    const match = matches.get(request) ?? matchRoute(request.method, request.url.split("?")[0]!);
    const params = checkParams({ route: match.route, params: match.params.map(decode) });
    if (ctx.mirror && match.route.named && ["PUT", "POST", "PATCH"].includes(request.method)) ctx.mirror.refuseWrite(params[0]!);
    await match.route.handler(ctx, request, reply, ...params);
    return reply;
  };
  const methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"] as const;
  app.route({ method: [...methods], url: "/v2", handler: dispatch });
  app.route({ method: [...methods], url: "/v2/*", handler: dispatch });
  app.route({ method: [...methods], url: "/_mf/*", handler: dispatch });
  options.web?.(app, ctx, { secret: options.secret, auth: options.auth !== undefined, https: options.https !== undefined });

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
    sendError(request, reply, e);
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(request, reply, new MfError("NAME_UNKNOWN", `no endpoint at ${request.url.slice(0, 200)}`));
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
    await options.mirror?.close();
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

/** `--trust-proxy` entries as fastify (proxy-addr) takes them, each checked here so a typo is a message, not a stack. */
export function checkTrustProxy(entries: string[]): string[] {
  const out = entries.flatMap((e) => e.split(",")).map((e) => e.trim()).filter(Boolean);
  for (const e of out) {
    if (["loopback", "linklocal", "uniquelocal"].includes(e)) continue;
    const [addr, bits, extra] = e.split("/");
    const family = isIP(addr ?? "");
    const max = family === 4 ? 32 : 128;
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max);
    if (!family || !bitsOk || extra !== undefined) {
      throw new MfError("BAD_REQUEST", `--trust-proxy "${e}": expected an IP address, a CIDR range (10.0.0.0/8) or loopback, linklocal, uniquelocal`);
    }
  }
  return out;
}

/** An error in the OCI envelope (the one way errors leave the server). */
function sendError(request: FastifyRequest, reply: FastifyReply, e: MfError): void {
  if (request.url.startsWith("/v2")) reply.header("Docker-Distribution-API-Version", "registry/2.0");
  sendJson(reply, e.status, ociEnvelope(e));
}

/** A path parameter decoded; one with a malformed escape is kept as is, and fails validation. */
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
