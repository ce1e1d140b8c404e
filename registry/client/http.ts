/**
 * The client's HTTP layer over undici: retries with backoff (5xx, 429 with `Retry-After`, dropped
 * connections), redirects followed by hand (Authorization never goes to another host), the OCI error
 * envelope parsed back into an MfError, and the auth hook: a 401 with a Bearer challenge calls the
 * injected `authenticate(challenge)` for a token.
 */
import type { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import { AuthError, MfError, RegistryError, fromOciEnvelope } from "../../core/errors.js";

export interface Challenge {
  /** `Bearer`, `Basic`, … */
  scheme: string;
  realm?: string;
  service?: string;
  scope?: string;
  params: Record<string, string>;
  /** the raw `WWW-Authenticate` header */
  raw: string;
  /** origin of the registry that asked */
  origin: string;
}

/**
 * What `authenticate` answers: a bearer token (optionally with its lifetime, so it is refreshed before it
 * runs out), or a whole `Authorization` value (basic auth).
 */
export type Credential = string | { token: string; expiresInS?: number } | { authorization: string };

/** Turns a challenge into credentials (registry/client/auth.ts: ssh keys and API keys). */
export type Authenticate = (challenge: Challenge, signal?: AbortSignal) => Promise<Credential>;

/** Refresh a token this long before it expires. */
const REFRESH_MARGIN_MS = 15_000;

interface StoredCredential {
  authorization: string;
  expiresAtMs?: number;
  challenge: Challenge;
}

export interface HttpOptions {
  authenticate?: Authenticate;
  /** attempts after the first, for retryable failures (default 6) */
  retries?: number;
  /** first backoff delay (default 200 ms, doubling, capped at maxDelayMs) */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** undici dispatcher (default: an Agent owned and closed by this client) */
  dispatcher?: Dispatcher;
  userAgent?: string;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** a factory, so that a retried or redirected request can send its body again */
  body?: () => string | Buffer | Readable | undefined;
  signal?: AbortSignal;
  /** statuses handed back to the caller; anything else becomes an MfError (default: 2xx) */
  ok?: (status: number) => boolean;
  /** retry transient failures (default true) */
  retry?: boolean;
  /** follow redirects (default true) */
  redirect?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** the URL that answered, after redirects */
  url: string;
  body: Dispatcher.ResponseData["body"];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 64 * 1024;

export function header(res: { headers: HttpResponse["headers"] }, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Is this error a dropped or refused connection, a timeout, or a cut body (worth retrying)? */
export function isTransient(e: unknown): boolean {
  if (e instanceof MfError) return e.code === "SERVICE_UNAVAILABLE" || e.code === "TOOMANYREQUESTS" || e.code === "UNKNOWN" && (e.detail as { transient?: boolean } | undefined)?.transient === true;
  const err = e as { code?: string; name?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if (err.name === "AbortError") return false;
  const codes = ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH"];
  if (err.code && (codes.includes(err.code) || err.code.startsWith("UND_ERR_"))) return err.code !== "UND_ERR_ABORTED" && err.code !== "UND_ERR_INVALID_ARG";
  if (err.name === "TypeError" && err.cause) return isTransient(err.cause);
  return false;
}

export function parseChallenge(raw: string, origin: string): Challenge {
  const m = /^\s*(\S+)\s*(.*)$/.exec(raw) ?? ["", raw, ""];
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  }
  return { scheme: m[1]!, realm: params.realm, service: params.service, scope: params.scope, params, raw, origin };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** `Retry-After` in seconds or as an HTTP date, in ms. */
function retryAfterMs(v: string | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export async function readText(body: HttpResponse["body"], max = MAX_ERROR_BODY): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    if (n < max) chunks.push(c as Buffer);
    n += (c as Buffer).length;
  }
  return Buffer.concat(chunks).subarray(0, max).toString("utf8");
}

/** Reads a whole (small) body, refusing more than `max` bytes. */
export async function readAll(body: HttpResponse["body"], max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > max) {
      body.destroy();
      throw new RegistryError("MANIFEST_TOO_LARGE", `registry answer exceeds ${max} bytes`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export function discard(body: HttpResponse["body"]): void {
  body.resume();
  body.on("error", () => {});
}

export class RegistryHttp {
  readonly dispatcher: Dispatcher;
  private readonly owned: boolean;
  private readonly opts: HttpOptions;
  /** credentials by registry origin */
  private readonly tokens = new Map<string, StoredCredential>();
  /** one refresh at a time per origin, however many requests notice the expiry */
  private readonly refreshing = new Map<string, Promise<void>>();

  constructor(opts: HttpOptions = {}) {
    this.opts = opts;
    this.owned = !opts.dispatcher;
    this.dispatcher = opts.dispatcher ?? new Agent({
      connections: 64,
      keepAliveTimeout: 30_000,
      headersTimeout: 10 * 60_000,
      bodyTimeout: 5 * 60_000,
    });
  }

  async close(): Promise<void> {
    if (this.owned) await this.dispatcher.close();
  }

  /** Backoff delay before attempt `n` (1-based). */
  delay(n: number): number {
    const base = this.opts.baseDelayMs ?? 200;
    const max = this.opts.maxDelayMs ?? 10_000;
    return Math.min(max, base * 2 ** (n - 1)) * (0.75 + Math.random() * 0.5);
  }

  get retries(): number {
    return this.opts.retries ?? 6;
  }

  /** Sleeps the backoff before retry `n`, honouring the signal. */
  backoff(n: number, signal?: AbortSignal, minMs = 0): Promise<void> {
    return sleep(Math.max(minMs, this.delay(n)), signal);
  }

  /**
   * Sends a request with retries, redirects and auth. Answers whose status `ok` accepts are returned
   * with an unread body (the caller reads or discards it); others throw the registry's error.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const ok = req.ok ?? ((s: number) => s >= 200 && s < 300);
    const origin = new URL(req.url).origin;
    let attempt = 0;
    let authTried = false;
    for (;;) {
      let res: HttpResponse;
      try {
        await this.freshen(origin, req.signal);
        res = await this.follow(req, origin);
      } catch (e) {
        if (req.retry !== false && isTransient(e) && attempt < this.retries && !req.signal?.aborted) {
          await this.backoff(++attempt, req.signal);
          continue;
        }
        throw wrapNetworkError(e, req);
      }
      if (ok(res.status)) return res;
      if (res.status === 401 && !authTried) {
        const raw = header(res, "www-authenticate");
        discard(res.body);
        authTried = true;
        await this.authenticate(raw, origin, req.signal);
        continue;
      }
      const retryable = res.status === 429 || res.status === 502 || res.status === 503 || res.status === 504 || res.status === 500;
      if (req.retry !== false && retryable && attempt < this.retries) {
        const after = retryAfterMs(header(res, "retry-after"));
        discard(res.body);
        await this.backoff(++attempt, req.signal, Math.min(after ?? 0, 60_000));
        continue;
      }
      throw await errorOf(res, req);
    }
  }

  private async authenticate(raw: string | undefined, origin: string, signal?: AbortSignal): Promise<void> {
    if (!raw) throw new AuthError("UNAUTHORIZED", `${origin} answered 401 without a WWW-Authenticate challenge`);
    const challenge = parseChallenge(raw, origin);
    const scheme = challenge.scheme.toLowerCase();
    if (scheme !== "bearer" && scheme !== "basic") {
      throw new AuthError("UNAUTHORIZED", `${origin} asks for ${challenge.scheme} authentication, which mf does not speak`);
    }
    if (!this.opts.authenticate) {
      throw new AuthError("UNAUTHORIZED", `${origin} requires authentication (${raw}) and no key is configured`);
    }
    await this.obtain(challenge, signal);
  }

  private async obtain(challenge: Challenge, signal?: AbortSignal): Promise<void> {
    const c = await this.opts.authenticate!(challenge, signal);
    if (typeof c === "string") this.tokens.set(challenge.origin, { authorization: `Bearer ${c}`, challenge });
    else if ("authorization" in c) this.tokens.set(challenge.origin, { authorization: c.authorization, challenge });
    else {
      const expiresAtMs = c.expiresInS ? Date.now() + c.expiresInS * 1000 : undefined;
      this.tokens.set(challenge.origin, { authorization: `Bearer ${c.token}`, expiresAtMs, challenge });
    }
  }

  /** A token about to expire is renewed before the request (a long push outlives a short token). */
  private async freshen(origin: string, signal?: AbortSignal): Promise<void> {
    const t = this.tokens.get(origin);
    if (t?.expiresAtMs === undefined || Date.now() < t.expiresAtMs - REFRESH_MARGIN_MS) return;
    let p = this.refreshing.get(origin);
    if (!p) {
      p = this.obtain(t.challenge, signal).finally(() => this.refreshing.delete(origin));
      this.refreshing.set(origin, p);
    }
    await p;
  }

  /** One attempt, following redirects by hand. */
  private async follow(req: HttpRequest, origin: string): Promise<HttpResponse> {
    let url = req.url;
    let method = req.method;
    let withBody = true;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { ...(req.headers ?? {}) };
      if (this.opts.userAgent) headers["user-agent"] = this.opts.userAgent;
      const token = this.tokens.get(origin);
      if (token && new URL(url).origin === origin && !headers.authorization) headers.authorization = token.authorization;
      if (!withBody) {
        delete headers["content-type"];
        delete headers["content-length"];
        delete headers["content-range"];
      }
      const r = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers,
        body: withBody ? req.body?.() : undefined,
        signal: req.signal,
        dispatcher: this.dispatcher,
      });
      const loc = header(r, "location");
      if (req.redirect !== false && REDIRECTS.has(r.statusCode) && loc) {
        discard(r.body);
        if (hops >= MAX_REDIRECTS) throw new RegistryError("UNKNOWN", `too many redirects from ${req.url}`);
        url = new URL(loc, url).toString();
        if (r.statusCode === 303 || ((r.statusCode === 301 || r.statusCode === 302) && method === "POST")) {
          method = "GET";
          withBody = false;
        }
        continue;
      }
      return { status: r.statusCode, headers: r.headers, url, body: r.body };
    }
  }
}

/**
 * A TLS handshake with a server that answered in plain HTTP: OpenSSL's "wrong version number" (or
 * "packet length too long", "http request"), on the error or its cause.
 */
function isPlainHttpAnswer(e: unknown): boolean {
  for (let x = e as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; x && depth < 4; x = x.cause as typeof x, depth++) {
    const code = typeof x.code === "string" ? x.code : "";
    const message = typeof x.message === "string" ? x.message : "";
    if (/^ERR_SSL_(WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST)$/.test(code)) return true;
    if (/wrong version number|packet length too long|ssl3?_get_record|http request/i.test(message) && /ssl|tls/i.test(`${code} ${message}`)) return true;
  }
  return false;
}

function wrapNetworkError(e: unknown, req: HttpRequest): unknown {
  if (e instanceof MfError) return e;
  if ((e as { name?: string })?.name === "AbortError" || req.signal?.aborted) return e;
  if (req.url.startsWith("https:") && isPlainHttpAnswer(e)) {
    const origin = new URL(req.url).origin;
    return new RegistryError(
      "BAD_REQUEST",
      `${origin} does not speak HTTPS (it answered the TLS handshake in plain HTTP); if it is a plain-HTTP registry, pass --insecure`,
      { cause: e },
    );
  }
  if (isTransient(e)) {
    const msg = (e as Error).message ?? String(e);
    return new RegistryError("SERVICE_UNAVAILABLE", `${req.method} ${redact(req.url)}: ${msg}`, { cause: e });
  }
  return e;
}

/** A URL for messages, without its query (signed URLs carry secrets). */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.slice(0, 200);
  }
}

/** A registry's error answer, with the HTTP status it came with. */
export class RegistryHttpError extends RegistryError {
  readonly httpStatus: number;
  constructor(code: ConstructorParameters<typeof RegistryError>[0], message: string, httpStatus: number, detail?: unknown) {
    super(code, message, { detail });
    this.httpStatus = httpStatus;
  }
}

/** The HTTP status behind an error thrown by `send`, if any. */
export function httpStatusOf(e: unknown): number | undefined {
  return e instanceof RegistryHttpError ? e.httpStatus : undefined;
}

/** The action a request needs, as registries name it in scopes. */
function actionOf(method: string): string {
  if (method === "GET" || method === "HEAD") return "pull";
  if (method === "DELETE") return "delete";
  return "push";
}

/** What a bodiless 401/403 refused: the action on the repository the URL names. */
function refusal(req: HttpRequest, status: number): string {
  const path = new URL(req.url).pathname;
  const m = /^\/v2\/(.+?)\/(?:blobs|manifests|tags|referrers)\//.exec(path);
  const what = m ? `${actionOf(req.method)} on ${decodeURIComponent(m[1]!)}` : path === "/v2/_catalog" ? "listing the catalog" : `${req.method} ${path}`;
  return status === 403
    ? `${what} is not allowed for these credentials (the registry answered 403)`
    : `${what} needs credentials the registry did not accept (it answered 401)`;
}

async function errorOf(res: HttpResponse, req: HttpRequest): Promise<MfError> {
  let text = "";
  try {
    text = await readText(res.body);
  } catch {
    /* the envelope is optional */
  }
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const err = fromOciEnvelope(res.status, body);
  if (res.status === 401 || res.status === 403) {
    // A HEAD answer has no body, and some registries send none: say what was refused, as the registry's
    // own envelope would ("push on team-a/x is not allowed for these credentials").
    const hasMessage = !!(body as { errors?: { message?: unknown }[] } | null)?.errors?.[0]?.message;
    const message = hasMessage ? err.message : refusal(req, res.status);
    return new AuthError(res.status === 401 ? "UNAUTHORIZED" : "DENIED", `${req.method} ${redact(req.url)}: ${message}`, { detail: err.detail });
  }
  if (!(body as { errors?: unknown } | null)?.errors) {
    const code = res.status === 404 ? "NAME_UNKNOWN" : res.status === 416 ? "RANGE_INVALID" : res.status === 429 ? "TOOMANYREQUESTS" : res.status >= 500 ? "UNKNOWN" : "BAD_REQUEST";
    return new RegistryHttpError(code, `${req.method} ${redact(req.url)} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`, res.status);
  }
  return new RegistryHttpError(err.code, err.message, res.status, err.detail);
}
