/**
 * HMAC-signed names the registry hands out: upload session locations (opaque, bound to the repository)
 * and short-lived blob URLs served without Authorization (what Ollama's downloader needs; an S3 driver
 * maps the same call to a pre-signed URL).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { MfError } from "../../core/errors.js";
import { isUuid } from "./validate.js";

export class Signer {
  private readonly key: Buffer;

  constructor(secret: string | Uint8Array) {
    const key = typeof secret === "string" ? Buffer.from(secret, "utf8") : Buffer.from(secret);
    if (key.length < 16) throw new Error("registry secret must be at least 16 bytes");
    this.key = key;
  }

  private mac(text: string): string {
    return createHmac("sha256", this.key).update(text).digest("base64url").slice(0, 32);
  }

  private same(a: string, b: string): boolean {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  }

  /** The opaque last segment of an upload location: `<uuid>.<mac>`. */
  uploadToken(name: string, uuid: string): string {
    return `${uuid}.${this.mac(`upload\n${name}\n${uuid}`)}`;
  }

  /** The session uuid of a token signed for this repository, or null. */
  verifyUploadToken(name: string, token: string): string | null {
    const dot = token.indexOf(".");
    if (dot < 0) return null;
    const uuid = token.slice(0, dot);
    if (!isUuid(uuid)) return null;
    return this.same(token, this.uploadToken(name, uuid)) ? uuid : null;
  }

  /** Query string `expires=…&sig=…` for a blob URL. */
  blobQuery(digest: string, expiresMs: number): string {
    return `expires=${expiresMs}&sig=${this.mac(`blob\n${digest}\n${expiresMs}`)}`;
  }

  verifyBlobQuery(digest: string, expires: string | undefined, sig: string | undefined, nowMs: number): boolean {
    if (!expires || !sig || !/^\d{1,15}$/.test(expires)) return false;
    if (Number(expires) < nowMs) return false;
    return this.same(sig, this.mac(`blob\n${digest}\n${expires}`));
  }
}

/**
 * `--public-url` checked and in the form clients see it (`new URL(realm).toString()` drops a default port
 * and lower-cases the host): `scheme://host[:port][/path]` with no trailing slash. Signatures are
 * verified against this exact text, so both sides must spell it alike.
 */
export function normalizePublicUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new MfError("BAD_REQUEST", `--public-url "${text}" is not a URL (expected e.g. https://registry.example.com)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new MfError("BAD_REQUEST", `--public-url "${text}": only http:// and https:// URLs`);
  if (u.username || u.password || u.search || u.hash) throw new MfError("BAD_REQUEST", `--public-url "${text}": no credentials, query or fragment`);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
}

/**
 * `scheme://host[:port]` to put in URLs handed back to the requester (upload and blob Locations): the
 * configured URL, else what the request says. `request.host` and `request.protocol` follow
 * X-Forwarded-Host / X-Forwarded-Proto only when the connection comes from a proxy the server was told
 * to trust (fastify's `trustProxy`, `--trust-proxy`); otherwise a client's forwarded headers are ignored.
 * Never what a signature is checked against: that is the configured identity alone (token-auth).
 */
export function publicBase(request: FastifyRequest, configured: string | undefined): string {
  if (configured) return configured.replace(/\/+$/, "");
  const proto = request.protocol === "https" ? "https" : "http";
  const host = request.host;
  const safeHost = /^[A-Za-z0-9.\-:[\]]+$/.test(host) ? host : "localhost";
  return `${proto}://${safeHost}`;
}
