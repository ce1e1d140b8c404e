/**
 * The access file (`mf registry serve --access FILE`, YAML): who may pull, push or delete where.
 *
 * ```yaml
 * anonymous:                       # what anyone may do, without credentials
 *   "public/*": [pull]
 * keys:                            # SSH ed25519 public keys (authorized_keys form)
 *   - key: ssh-ed25519 AAAAC3Nza… alice@laptop
 *     access:
 *       "team-a/*": [pull, push, delete]
 *       "public/*": [pull, push]
 *     catalog: true                # may list repositories (registry:catalog:*)
 * apikeys:                         # HTTP basic auth (skopeo --creds, CI); managed by `mf registry key`
 *   - id: ci
 *     hash: sha256:<hex of sha256(secret)>
 *     access:
 *       "team-a/*": [pull, push]
 * ```
 * Globs match repository names: `*` within one path segment, `**` across segments (`**` alone: every
 * repository). What `anonymous` allows is allowed to every key as well.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import YAML from "yaml";
import { AuthError } from "../../core/errors.js";
import { ACTIONS, type Action } from "../protocol/auth.js";
import { parsePublicKeyLine, type PublicKey } from "../protocol/keys.js";

export const ANONYMOUS = "anonymous";

export interface Rule {
  glob: string;
  pattern: RegExp;
  actions: Set<Action>;
}

export interface Grantee {
  /** the token subject: `anonymous`, `key:SHA256:…` or `apikey:<id>` */
  subject: string;
  rules: Rule[];
  catalog: boolean;
}

export interface KeyEntry extends Grantee {
  key: PublicKey;
}

export interface ApiKeyEntry extends Grantee {
  id: string;
  /** sha256 of the secret */
  hash: Buffer;
  created?: string;
}

/** The hash an API key secret is stored as: `sha256:<hex>`. */
export function apiKeyHash(secret: string): string {
  return `sha256:${createHash("sha256").update(secret, "utf8").digest("hex")}`;
}

export function globPattern(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

function fail(source: string, what: string): never {
  throw new AuthError("BAD_REQUEST", `${source}: ${what}`);
}

function parseRules(source: string, where: string, v: unknown): Rule[] {
  if (v === undefined || v === null) return [];
  if (typeof v !== "object" || Array.isArray(v)) fail(source, `${where}: expected a mapping of namespace-glob: [pull, push, delete]`);
  return Object.entries(v as Record<string, unknown>).map(([glob, acts]) => {
    const list = Array.isArray(acts) ? acts : typeof acts === "string" ? acts.split(",") : fail(source, `${where} "${glob}": expected a list of actions`);
    const actions = new Set<Action>();
    for (const a of list) {
      const s = String(a).trim();
      if (s === "*") ACTIONS.forEach((x) => actions.add(x));
      else if ((ACTIONS as readonly string[]).includes(s)) actions.add(s as Action);
      else fail(source, `${where} "${glob}": unknown action "${s}" (pull, push, delete)`);
    }
    return { glob, pattern: globPattern(glob), actions };
  });
}

export class AccessPolicy {
  readonly anonymous: Grantee;
  readonly keys: KeyEntry[];
  readonly apiKeys: ApiKeyEntry[];
  /** the text had no document at all (empty, blank or comments only) */
  readonly blank: boolean;
  private readonly bySubject = new Map<string, Grantee>();

  constructor(anonymous: Grantee, keys: KeyEntry[], apiKeys: ApiKeyEntry[], blank = false) {
    this.anonymous = anonymous;
    this.keys = keys;
    this.apiKeys = apiKeys;
    this.blank = blank;
    for (const g of [anonymous, ...keys, ...apiKeys]) this.bySubject.set(g.subject, g);
  }

  /** Parses an access file's text; every mistake is a clear error naming the file. */
  static parse(text: string, source = "access file"): AccessPolicy {
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (e) {
      fail(source, `not valid YAML: ${(e as Error).message.split("\n")[0]}`);
    }
    const blank = doc === null || doc === undefined;
    if (blank) doc = {};
    if (typeof doc !== "object" || Array.isArray(doc)) fail(source, "expected a mapping with anonymous, keys and apikeys");
    const d = doc as Record<string, unknown>;
    for (const k of Object.keys(d)) if (!["anonymous", "keys", "apikeys"].includes(k)) fail(source, `unknown section "${k}" (anonymous, keys, apikeys)`);
    const anonymous: Grantee = { subject: ANONYMOUS, rules: parseRules(source, "anonymous", d.anonymous), catalog: false };
    const list = (name: string): Record<string, unknown>[] => {
      const v = d[name];
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) fail(source, `${name}: expected a list`);
      return v.map((e, i) => (e && typeof e === "object" && !Array.isArray(e) ? (e as Record<string, unknown>) : fail(source, `${name}[${i}]: expected a mapping`)));
    };
    const keys = list("keys").map((e, i): KeyEntry => {
      if (typeof e.key !== "string") fail(source, `keys[${i}]: missing key: ssh-ed25519 AAAA…`);
      let key: PublicKey;
      try {
        key = parsePublicKeyLine(e.key);
      } catch (err) {
        fail(source, `keys[${i}]: ${(err as Error).message}`);
      }
      return { subject: `key:${key.fingerprint}`, key, rules: parseRules(source, `keys[${i}].access`, e.access), catalog: e.catalog === true };
    });
    const apiKeys = list("apikeys").map((e, i): ApiKeyEntry => {
      const id = typeof e.id === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(e.id) ? e.id : fail(source, `apikeys[${i}]: id must be 1-64 of [A-Za-z0-9._-]`);
      const m = typeof e.hash === "string" ? /^sha256:([0-9a-f]{64})$/.exec(e.hash) : null;
      if (!m) fail(source, `apikeys[${i}] (${id}): hash must be sha256:<64 hex> (add keys with \`mf registry key add\`)`);
      return {
        subject: `apikey:${id}`, id, hash: Buffer.from(m[1]!, "hex"),
        created: typeof e.created === "string" ? e.created : undefined,
        rules: parseRules(source, `apikeys[${i}].access`, e.access), catalog: e.catalog === true,
      };
    });
    const seen = new Set<string>();
    for (const g of [...keys, ...apiKeys]) {
      if (seen.has(g.subject)) fail(source, `${g.subject} is listed twice`);
      seen.add(g.subject);
    }
    return new AccessPolicy(anonymous, keys, apiKeys, blank);
  }

  /** Grants nothing to anyone: no keys, no API keys, no anonymous rules. */
  get empty(): boolean {
    return this.keys.length === 0 && this.apiKeys.length === 0 && this.anonymous.rules.length === 0;
  }

  /** The listed key with this public blob, or undefined. */
  findKey(blob: Buffer): KeyEntry | undefined {
    return this.keys.find((k) => k.key.blob.equals(blob));
  }

  /** The API key whose hash matches `secret`, or undefined (compared in constant time). */
  findApiKey(secret: string): ApiKeyEntry | undefined {
    const h = createHash("sha256").update(secret, "utf8").digest();
    return this.apiKeys.find((k) => timingSafeEqual(k.hash, h));
  }

  /** Is `subject` known to this policy (anonymous always is)? */
  knows(subject: string): boolean {
    return this.bySubject.has(subject);
  }

  /** The actions `subject` may perform on repository `name` (anonymous rules included). */
  allowed(subject: string, name: string): Set<Action> {
    const out = new Set<Action>();
    const grantees = subject === ANONYMOUS ? [this.anonymous] : [this.anonymous, this.bySubject.get(subject)];
    for (const g of grantees) {
      if (!g) continue;
      for (const r of g.rules) if (r.pattern.test(name)) r.actions.forEach((a) => out.add(a));
    }
    return out;
  }

  /** May `subject` list the catalog? */
  catalog(subject: string): boolean {
    return this.bySubject.get(subject)?.catalog === true;
  }
}
