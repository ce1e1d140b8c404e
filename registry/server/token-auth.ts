/**
 * Key-based access control behind the AuthHook: a token endpoint (`GET /token` under the registry's
 * configured public URL, the challenge's realm and the only URL a signature is verified against) that
 * accepts an Ollama-style signature (compat.md §4), an API key over basic auth, or nothing (anonymous),
 * and answers a short-lived HS256 JWT with docker-style `access` claims; and the
 * check every guarded route runs on the token. Missing or invalid credentials → 401 with a Bearer
 * challenge; a valid token whose holder may not do this → 403 DENIED. A valid token that only lacks the
 * scope (its holder may do it, but asked for less) also gets a 401, so the client fetches a wider token.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { jwtVerify, SignJWT } from "jose";
import { AuthError, MfError, ociEnvelope } from "../../core/errors.js";
import {
  ACTIONS, formatChallenge, formatScope, parseScopes, parseSignedAuthorization, signedString,
  SIGNATURE_WINDOW_S, TOKEN_PATH, type AccessClaim, type Action, type Scope, type TokenResponse,
} from "../protocol/auth.js";
import { publicKeyFromBlob, verifySignature } from "../protocol/keys.js";
import { ANONYMOUS, type AccessPolicy } from "./access.js";
import type { AccessSource } from "./access-file.js";
import { setRequestRefusal, type AuthHook, type AuthorizeRequest, type Refusal } from "./auth.js";
import { NonceStore } from "./nonces.js";
import { normalizePublicUrl } from "./signing.js";
import type { StorageDriver } from "./storage/driver.js";

const ISSUER = "mf-registry";

export interface TokenAuthOptions {
  access: AccessSource;
  /** the registry's --secret-file secret; tokens are signed with a key derived from it */
  secret: string | Uint8Array;
  /** where seen nonces are kept (the registry's storage, shared by replicas) */
  storage: StorageDriver;
  /** the `service` of challenges and the tokens' audience (default "mf-registry") */
  service?: string;
  /** token lifetime in seconds (default 300) */
  tokenTtlS?: number;
  /** ms since the epoch (tests) */
  clock?: () => number;
  /**
   * How clients reach the registry (`--public-url`): the realm of challenges, and the URL a signed token
   * request must have been signed for. Never taken from a request's Host or X-Forwarded-* headers, which
   * a hostile registry relaying a victim's signed request controls. A function when it is known only
   * after listening (port 0).
   */
  publicUrl: string | (() => string);
  /** told of every refusal of presented credentials (403, or a token request refused): who, what, where; never a secret */
  onDenied?: (denial: Denial) => void;
}

/** A refused request, as the registry logs it (auth.ts's Refusal, also recorded on the request for the audit log). */
export type Denial = Refusal;

export interface TokenAuth extends AuthHook {
  /** Adds the token endpoint to a registry app (createRegistryServer calls it). */
  register(app: FastifyInstance): void;
}

interface Claims {
  sub: string;
  access: AccessClaim[];
}

/** The scope a route's access needs, as a challenge names it. */
export function scopeOf(access: AuthorizeRequest): Scope | null {
  if (access.repository === null) return access.actions.length ? { type: "registry", name: "catalog", actions: ["*"] } : null;
  const actions = access.actions.includes("push") ? ["pull", "push"] : [...access.actions];
  return { type: "repository", name: access.repository, actions };
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** `Basic base64(user:password)` → password, or null. */
function basicPassword(value: string): string | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
  if (!m) return null;
  const text = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = text.indexOf(":");
  return colon < 0 ? null : text.slice(colon + 1);
}

export function createTokenAuth(opts: TokenAuthOptions): TokenAuth {
  const clock = opts.clock ?? Date.now;
  const service = opts.service ?? "mf-registry";
  const ttlS = opts.tokenTtlS ?? 300;
  const secret = typeof opts.secret === "string" ? Buffer.from(opts.secret, "utf8") : Buffer.from(opts.secret);
  // a key of its own, so a token MAC can never be confused with an upload or blob-URL MAC
  const jwtKey = createHmac("sha256", secret).update("mf registry token key v1").digest();
  const nonces = new NonceStore(opts.storage, SIGNATURE_WINDOW_S, clock);
  if (!opts.publicUrl) throw new MfError("BAD_REQUEST", "key-based auth needs the registry's public URL (--public-url): signed token requests are verified against it");
  const fixedIdentity = typeof opts.publicUrl === "string" ? normalizePublicUrl(opts.publicUrl) : undefined;
  /** The registry's own identity, the only base a signature may cover. */
  const identity = (): string => fixedIdentity ?? normalizePublicUrl((opts.publicUrl as () => string)());

  const mayDo = (policy: AccessPolicy, subject: string, access: AuthorizeRequest): boolean => {
    if (!policy.knows(subject)) return false;
    if (access.repository === null) return access.actions.length === 0 || policy.catalog(subject);
    const allowed = policy.allowed(subject, access.repository);
    return access.actions.every((a) => allowed.has(a));
  };

  const covers = (claims: AccessClaim[], access: AuthorizeRequest): boolean => {
    if (access.repository === null) {
      return access.actions.length === 0 || claims.some((c) => c.type === "registry" && c.name === "catalog" && c.actions.includes("*"));
    }
    const have = new Set(claims.filter((c) => c.type === "repository" && c.name === access.repository).flatMap((c) => c.actions));
    return access.actions.every((a) => have.has(a) || have.has("*"));
  };

  const verifyToken = async (token: string): Promise<Claims> => {
    try {
      const { payload } = await jwtVerify(token, jwtKey, {
        algorithms: ["HS256"], issuer: ISSUER, audience: service, currentDate: new Date(clock()), requiredClaims: ["exp", "sub"],
      });
      const access = Array.isArray(payload.access) ? (payload.access as AccessClaim[]) : [];
      return { sub: String(payload.sub), access };
    } catch {
      throw new AuthError("UNAUTHORIZED", "the bearer token is invalid or expired; ask the token endpoint again");
    }
  };

  /** A refusal of credentials that were presented: logged (who, what, where), then thrown. */
  const refuse = (request: FastifyRequest, who: string, access: AuthorizeRequest, code: "UNAUTHORIZED" | "DENIED", message: string): AuthError => {
    const denial: Denial = { who, action: actionWords(access), repository: access.repository, reason: message };
    setRequestRefusal(request, denial);
    opts.onDenied?.(denial);
    return new AuthError(code, message);
  };

  const authorize = async (request: FastifyRequest, access: AuthorizeRequest): Promise<string> => {
    const policy = opts.access.current();
    const auth = header(request, "authorization");
    if (!auth) {
      if (access.repository !== null && access.actions.length > 0 && mayDo(policy, ANONYMOUS, access)) return ANONYMOUS;
      throw new AuthError("UNAUTHORIZED", "authentication required");
    }
    if (/^Basic\s/i.test(auth)) {
      const password = basicPassword(auth);
      if (password === null) throw new AuthError("UNAUTHORIZED", "malformed basic credentials");
      const entry = policy.findApiKey(password);
      if (!entry) throw refuse(request, "an unknown API key", access, "UNAUTHORIZED", "unknown API key");
      if (!mayDo(policy, entry.subject, access)) throw refuse(request, entry.subject, access, "DENIED", denied(access));
      return entry.subject;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m) throw new AuthError("UNAUTHORIZED", "unsupported Authorization scheme; use a bearer token from the token endpoint");
    const claims = await verifyToken(m[1]!);
    if (claims.sub !== ANONYMOUS && !policy.knows(claims.sub)) throw refuse(request, claims.sub, access, "UNAUTHORIZED", "the token's key is no longer listed");
    const may = mayDo(policy, claims.sub, access);
    if (covers(claims.access, access) && may) return claims.sub;
    if (may) throw new AuthError("UNAUTHORIZED", "the token does not cover this request; ask the token endpoint for its scope");
    if (claims.sub === ANONYMOUS) throw refuse(request, ANONYMOUS, access, "UNAUTHORIZED", "authentication required (anonymous access does not allow this)");
    throw refuse(request, whoIs(policy, claims.sub), access, "DENIED", denied(access));
  };

  const challenge = (request: FastifyRequest, access: AuthorizeRequest): string => {
    const scope = scopeOf(access);
    return formatChallenge(`${identity()}${TOKEN_PATH}`, service, scope ? formatScope(scope) : undefined);
  };

  /** Who is asking at the token endpoint: an ssh signature, an API key, or nobody. `presented` learns who claimed to ask. */
  const tokenSubject = async (request: FastifyRequest, policy: AccessPolicy, query: URLSearchParams, presented: { who?: string }): Promise<string> => {
    const auth = header(request, "authorization");
    if (!auth) return ANONYMOUS;
    if (/^Basic\s/i.test(auth)) {
      presented.who = "an API key";
      const password = basicPassword(auth);
      if (password === null) throw new AuthError("UNAUTHORIZED", "malformed basic credentials");
      const entry = policy.findApiKey(password);
      if (!entry) throw new AuthError("UNAUTHORIZED", "unknown API key");
      presented.who = entry.subject;
      return entry.subject;
    }
    presented.who = "a signed request";
    const signed = parseSignedAuthorization(auth);
    if (!signed) throw new AuthError("UNAUTHORIZED", "unsupported Authorization at the token endpoint (a signed key or basic API key)");
    const key = publicKeyFromBlob(signed.publicBlob);
    if (!key) throw new AuthError("UNAUTHORIZED", "only ssh-ed25519 keys are accepted");
    presented.who = whoIs(policy, `key:${key.fingerprint}`);
    const entry = policy.findKey(key.blob);
    if (!entry) throw new AuthError("UNAUTHORIZED", `key ${key.fingerprint} is not authorised on this registry`);
    const tsText = query.get("ts");
    const nonce = query.get("nonce");
    if (!tsText || !/^\d{1,12}$/.test(tsText) || !nonce || nonce.length > 128) {
      throw new AuthError("UNAUTHORIZED", "signed token requests need ts and nonce parameters");
    }
    // the registry's own identity, never the request's Host: a request signed for another registry
    // (a hostile one that relays it here) covers that registry's URL and fails
    const url = `${identity()}${request.url}`;
    if (!verifySignature(key, signedString("GET", url), signed.signature)) {
      throw new AuthError("UNAUTHORIZED", `the signature does not match this request (it must be signed for ${identity()}${TOKEN_PATH})`);
    }
    const ts = Number(tsText);
    if (Math.abs(clock() / 1000 - ts) > SIGNATURE_WINDOW_S) {
      throw new AuthError("UNAUTHORIZED", `the signed request's timestamp is more than ${SIGNATURE_WINDOW_S / 60} minutes from the registry's clock`);
    }
    if (!(await nonces.claim(nonce, ts))) throw new AuthError("UNAUTHORIZED", "the nonce was already used (replayed request)");
    return entry.subject;
  };

  const grant = (policy: AccessPolicy, subject: string, scopes: Scope[]): AccessClaim[] => {
    const out: AccessClaim[] = [];
    for (const s of scopes) {
      if (s.type === "registry") {
        if (s.name === "catalog" && policy.catalog(subject)) out.push({ type: "registry", name: "catalog", actions: ["*"] });
        continue;
      }
      const allowed = policy.allowed(subject, s.name);
      const asked = s.actions.includes("*") ? [...ACTIONS] : s.actions;
      const actions = ACTIONS.filter((a: Action) => asked.includes(a) && allowed.has(a));
      if (actions.length) out.push({ type: "repository", name: s.name, actions });
    }
    return out;
  };

  const tokenEndpoint = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const q = request.url.indexOf("?");
    const query = new URLSearchParams(q < 0 ? "" : request.url.slice(q + 1));
    const policy = opts.access.current();
    const scopes = parseScopes(query.getAll("scope"));
    let subject: string;
    const presented: { who?: string } = {};
    try {
      subject = await tokenSubject(request, policy, query, presented);
    } catch (e) {
      const err = e instanceof MfError ? e : new AuthError("UNAUTHORIZED", "authentication failed");
      if (presented.who) {
        const names = scopes.map((s) => s.name).join(" ");
        const denial: Denial = { who: presented.who, action: "token", repository: names || null, reason: err.message };
        setRequestRefusal(request, denial);
        opts.onDenied?.(denial);
      }
      reply.code(err.status).header("WWW-Authenticate", `Basic realm="${service}"`).type("application/json").send(ociEnvelope(err));
      return;
    }
    const access = grant(policy, subject, scopes);
    const nowS = Math.floor(clock() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuer(ISSUER)
      .setSubject(subject)
      .setAudience(service)
      .setIssuedAt(nowS)
      .setNotBefore(nowS - 5)
      .setExpirationTime(nowS + ttlS)
      .setJti(randomBytes(12).toString("base64url"))
      .sign(jwtKey);
    const body: TokenResponse = { token, access_token: token, expires_in: ttlS, issued_at: new Date(nowS * 1000).toISOString() };
    reply.code(200).header("Cache-Control", "no-store").type("application/json").send(body);
  };

  return {
    authorize,
    challenge,
    register(app: FastifyInstance) {
      app.get(TOKEN_PATH, tokenEndpoint);
    },
  };
}

/** A subject as a log names it: a key's fingerprint with its comment from the access file, an API key's id. */
function whoIs(policy: AccessPolicy, subject: string): string {
  const comment = policy.keys.find((k) => k.subject === subject)?.key.comment;
  return comment ? `${subject} (${comment.replace(/[^\x20-\x7e]/g, "?").slice(0, 100)})` : subject;
}

function actionWords(access: AuthorizeRequest): string {
  if (access.repository === null) return access.actions.length ? "catalog" : "ping";
  return access.actions.join(",");
}

function denied(access: AuthorizeRequest): string {
  if (access.repository === null) return "listing the catalog is not allowed for these credentials";
  return `${access.actions.join(",")} on ${access.repository} is not allowed for these credentials`;
}
