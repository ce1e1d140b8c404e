/**
 * Who is looking at the web page, and what they may see. Without an access file everyone sees every
 * repository; with one, a visitor sees what `anonymous` may pull, and a person who signed in with an API
 * key (`mf registry key add`) what that key may pull.
 *
 * A sign-in gives a session cookie `mf_session=<payload>.<mac>`: HttpOnly, SameSite=Strict, Secure when
 * the page is served over https, scoped to the page's API (`Path=/ui/api`, so it never travels to `/v2/`
 * or `/token`, which never read cookies anyway), expiring. The payload names the key's id, a tag of the
 * key's stored hash and the expiry; the MAC is HMAC-SHA256 under a key derived (HKDF) from the registry's
 * secret with its own label, so it can never be confused with a token, upload or blob-URL MAC. Each
 * request checks the key against the access file in force: a revoked key (or one re-added under the same
 * id with a new secret) ends its sessions at once.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ANONYMOUS, type AccessPolicy, type ApiKeyEntry } from "../access.js";
import type { AccessSource } from "../access-file.js";

export const SESSION_COOKIE = "mf_session";
export const SESSION_PATH = "/ui/api";
const LABEL = "mf registry web session v1";

export interface Viewer {
  /** the policy's subject (`anonymous`, `apikey:<id>`), or undefined when the registry has no access control */
  subject?: string;
  /** the API key id signed in with, if any */
  apiKey?: string;
  /** whether `name` may be shown */
  mayPull(name: string): boolean;
}

interface Payload {
  /** API key id */
  k: string;
  /** tag of the key's stored hash */
  h: string;
  /** expiry, ms since the epoch */
  e: number;
}

export interface SessionOptions {
  secret: string | Uint8Array;
  /** the access file in force; undefined: no access control */
  access?: AccessSource;
  /** true when the registry has an auth hook but no access file for the page: nothing is shown */
  closed?: boolean;
  ttlMs: number;
  secure: boolean;
  clock: () => number;
}

export class Sessions {
  private readonly key: Buffer;

  constructor(private readonly opts: SessionOptions) {
    const secret = typeof opts.secret === "string" ? Buffer.from(opts.secret, "utf8") : Buffer.from(opts.secret);
    this.key = Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), LABEL, 32));
  }

  get accessControl(): boolean {
    return this.opts.access !== undefined || this.opts.closed === true;
  }

  private mac(text: string): Buffer {
    return createHmac("sha256", this.key).update(text).digest();
  }

  private keyTag(entry: ApiKeyEntry): string {
    return this.mac(`key\n${entry.id}\n${entry.hash.toString("hex")}`).subarray(0, 12).toString("base64url");
  }

  /** The API key whose secret this is, in the policy in force, or undefined. */
  findKey(secret: string): ApiKeyEntry | undefined {
    return this.opts.access?.current().findApiKey(secret);
  }

  /** The Set-Cookie value of a new session for `entry`. */
  issue(entry: ApiKeyEntry): string {
    const payload: Payload = { k: entry.id, h: this.keyTag(entry), e: this.opts.clock() + this.opts.ttlMs };
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    const value = `${body}.${this.mac(`session\n${body}`).toString("base64url")}`;
    return this.cookie(value, Math.floor(this.opts.ttlMs / 1000));
  }

  /** The Set-Cookie value that ends a session in the browser. */
  clear(): string {
    return this.cookie("", 0);
  }

  private cookie(value: string, maxAgeS: number): string {
    return `${SESSION_COOKIE}=${value}; Path=${SESSION_PATH}; Max-Age=${maxAgeS}; HttpOnly; SameSite=Strict${this.opts.secure ? "; Secure" : ""}`;
  }

  /** The API key of a valid session cookie on this request (still listed, same secret, not expired), or undefined. */
  private sessionKey(request: FastifyRequest, policy: AccessPolicy): ApiKeyEntry | undefined {
    const value = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (!value || value.length > 1024) return undefined;
    const dot = value.indexOf(".");
    if (dot < 0) return undefined;
    const body = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), "base64url");
    const want = this.mac(`session\n${body}`);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
    let p: Payload;
    try {
      p = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
    } catch {
      return undefined;
    }
    if (typeof p.e !== "number" || p.e <= this.opts.clock()) return undefined;
    const entry = policy.apiKeys.find((k) => k.id === p.k);
    return entry && this.keyTag(entry) === p.h ? entry : undefined;
  }

  /** Who is asking, and what they may see. */
  viewer(request: FastifyRequest): Viewer {
    if (this.opts.closed && !this.opts.access) return { subject: ANONYMOUS, mayPull: () => false };
    if (!this.opts.access) return { mayPull: () => true };
    const policy = this.opts.access.current();
    const entry = this.sessionKey(request, policy);
    const subject = entry ? entry.subject : ANONYMOUS;
    return {
      subject,
      apiKey: entry?.id,
      mayPull: (name) => policy.knows(subject) && policy.allowed(subject, name).has("pull"),
    };
  }
}

/** One cookie's value from a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
