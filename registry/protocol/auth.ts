/**
 * The registry's key-based auth scheme, shared by server and client (compat.md §4, exactly as Ollama
 * signs): on a Bearer challenge the client builds the token URL = realm + `nonce`, `scope` (one per
 * scope), `service`, `ts`, keys sorted; signs `GET,<that URL>,<base64 of the hex sha256 of the empty
 * body>` with its ed25519 key; sends `Authorization: <base64 public key blob>:<base64 signature>`.
 * Scopes follow the docker token spec (`repository:<name>:<actions>`, `registry:catalog:*`).
 */
import { createHash, randomBytes } from "node:crypto";
import type { SshKey } from "./keys.js";

/** The path of the token endpoint on the registry (the realm is `<registry base>/token`). */
export const TOKEN_PATH = "/token";

/** Seconds a signed token request stays acceptable either side of the server's clock. */
export const SIGNATURE_WINDOW_S = 5 * 60;

export type Action = "pull" | "push" | "delete";
export const ACTIONS: readonly Action[] = ["pull", "push", "delete"];

export interface Scope {
  type: "repository" | "registry";
  /** repository name, or `catalog` */
  name: string;
  /** actions; `*` for the catalog */
  actions: string[];
}

/** Parses `repository:team-a/x:pull,push` (the name may itself contain `:` only for a host port, so split from both ends). */
export function parseScope(text: string): Scope | null {
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  if (first < 0 || last === first) return null;
  const type = text.slice(0, first);
  if (type !== "repository" && type !== "registry") return null;
  const name = text.slice(first + 1, last);
  const actions = text.slice(last + 1).split(",").map((a) => a.trim()).filter(Boolean);
  if (!name) return null;
  return { type, name, actions };
}

export function formatScope(s: Scope): string {
  return `${s.type}:${s.name}:${s.actions.join(",")}`;
}

/** Every scope in a space-separated `scope` challenge value or several `scope` query parameters. */
export function parseScopes(values: string[]): Scope[] {
  const out: Scope[] = [];
  for (const v of values) for (const part of v.split(" ")) {
    const s = part ? parseScope(part) : null;
    if (s) out.push(s);
  }
  return out;
}

/** `base64(hex(sha256(body)))`, the last field of the signed string (the token GET has an empty body). */
export function bodyHash(body: Buffer | string = ""): string {
  return Buffer.from(createHash("sha256").update(body).digest("hex")).toString("base64");
}

/** The exact string the client signs for a request. */
export function signedString(method: string, url: string, body: Buffer | string = ""): string {
  return `${method},${url},${bodyHash(body)}`;
}

/** 16 random bytes, base64url without padding (as Ollama's NewNonce). */
export function newNonce(): string {
  return randomBytes(16).toString("base64url");
}

/**
 * The token URL for a challenge: realm plus `nonce`, `scope`s, `service`, `ts`, sorted by key (as Go's
 * url.Values.Encode, which the server verifies byte for byte because it signs the exact URL).
 */
export function tokenUrl(challenge: { realm: string; service?: string; scopes: string[] }, opts: { nowS?: number; nonce?: string } = {}): string {
  const u = new URL(challenge.realm);
  const params: [string, string][] = [...u.searchParams.entries()];
  params.push(["nonce", opts.nonce ?? newNonce()]);
  for (const s of challenge.scopes) params.push(["scope", s]);
  params.push(["service", challenge.service ?? ""]);
  params.push(["ts", String(opts.nowS ?? Math.floor(Date.now() / 1000))]);
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const q = new URLSearchParams(params);
  u.search = q.toString();
  return u.toString();
}

/** `Authorization` value for a GET of `url`: `<base64 public key blob>:<base64 signature>`. */
export function signRequest(key: SshKey, method: string, url: string, body: Buffer | string = ""): string {
  const sig = key.sign(signedString(method, url, body));
  return `${key.publicBlob.toString("base64")}:${sig.toString("base64")}`;
}

/** Splits a signed `Authorization` value; null when it does not have that shape. */
export function parseSignedAuthorization(value: string): { publicBlob: Buffer; signature: Buffer } | null {
  const m = /^([A-Za-z0-9+/]+={0,2}):([A-Za-z0-9+/]+={0,2})$/.exec(value.trim());
  if (!m) return null;
  return { publicBlob: Buffer.from(m[1]!, "base64"), signature: Buffer.from(m[2]!, "base64") };
}

/** A Bearer challenge value; scope values must not contain `"` (they never do). */
export function formatChallenge(realm: string, service: string, scope?: string, error?: string): string {
  return `Bearer realm="${realm}",service="${service}"${scope ? `,scope="${scope}"` : ""}${error ? `,error="${error}"` : ""}`;
}

/** The JSON the token endpoint answers. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

/** Docker-style `access` claim entries. */
export interface AccessClaim {
  type: string;
  name: string;
  actions: string[];
}
