/**
 * OpenSSH's `allowed_signers` file (ssh-keygen(1), "ALLOWED SIGNERS"), the list of keys whose SSH
 * signatures are trusted: one key a line,
 *
 *   principals [options] keytype base64-key [comment]
 *
 * `principals` is a comma-separated list of patterns (`*`, `?`, `!negation`); the options are
 * `namespaces="mf-model,git"` (the line counts only for those namespaces), `valid-after="20260101"` and
 * `valid-before="20270101Z"` (YYYYMMDD[HHMM[SS]], local time unless it ends in Z), and `cert-authority`
 * (a CA for SSH certificates: mf verifies plain keys only, so such a line never matches a signature, and
 * the refusal says so). Lines with keys other than ssh-ed25519 are kept (they may match nothing mf
 * verifies) rather than refused, so one file serves both ssh-keygen and mf.
 */
import { AuthError } from "../../core/errors.js";
import { fingerprint, publicKeyFromBlob, type PublicKey } from "./keys.js";

export interface AllowedSigner {
  /** the principal patterns, as written */
  principals: string[];
  namespaces?: string[];
  /** ms since the epoch */
  validAfter?: number;
  validBefore?: number;
  certAuthority: boolean;
  keyType: string;
  keyBlob: Buffer;
  /** the ed25519 key; undefined for other key types */
  key?: PublicKey;
  /** 1-based line number, for messages */
  line: number;
}

export interface AllowedSigners {
  /** where the list came from (a path), for messages */
  source: string;
  signers: AllowedSigner[];
}

/** Who signed, as an allowed_signers line names them. */
export interface Signer {
  principals: string[];
  fingerprint: string;
  keyType: string;
}

const KEY_TYPE = /^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com|ssh-ed25519-cert-v01@openssh\.com|rsa-sha2-(?:256|512))$/;

/** OpenSSH's wildcard match of one pattern (`*`, `?`). */
function matchPattern(s: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
  return re.test(s);
}

/** OpenSSH's match_pattern_list: a negated pattern that matches wins (false); else any positive match. */
export function matchPatternList(s: string, patterns: string[]): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith("!")) {
      if (matchPattern(s, p.slice(1))) return false;
    } else if (matchPattern(s, p)) matched = true;
  }
  return matched;
}

/** `YYYYMMDD[HHMM[SS]][Z]` → ms since the epoch (local time unless Z). */
export function parseSshTime(text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z)?$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4] ?? "0", m[5] ?? "0", m[6] ?? "0"].map(Number) as number[];
  const t = m[7] ? Date.UTC(y!, mo! - 1, d!, h!, mi!, s!) : new Date(y!, mo! - 1, d!, h!, mi!, s!).getTime();
  return Number.isNaN(t) ? undefined : t;
}

/** Splits `text` at each character `sep` matches outside double quotes; empty pieces are dropped. */
function splitOutsideQuotes(text: string, sep: (ch: string) => boolean): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && sep(ch)) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw new Error("unterminated quote");
  out.push(cur);
  return out.filter(Boolean);
}

const unquote = (s: string) => (s.startsWith('"') && s.endsWith('"') && s.length >= 2 ? s.slice(1, -1) : s);

/** Parses the file's text; a malformed line is an error naming it (ssh-keygen refuses such files too). */
export function parseAllowedSigners(text: string, source = "allowed_signers"): AllowedSigners {
  const signers: AllowedSigner[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const where = `${source}:${i + 1}`;
    let f: string[];
    try {
      f = splitOutsideQuotes(line, (ch) => ch === " " || ch === "\t");
    } catch (e) {
      throw new AuthError("BAD_REQUEST", `${where}: ${(e as Error).message}`);
    }
    if (f.length < 3) throw new AuthError("BAD_REQUEST", `${where}: expected "principals [options] keytype key"`);
    const principals = unquote(f[0]!).split(",").filter(Boolean);
    let k = 1;
    const signer: Partial<AllowedSigner> = { principals, certAuthority: false, line: i + 1 };
    if (!KEY_TYPE.test(f[1]!)) {
      for (const opt of splitOutsideQuotes(f[1]!, (ch) => ch === ",")) {
        const eq = opt.indexOf("=");
        const name = (eq < 0 ? opt : opt.slice(0, eq)).toLowerCase();
        const value = eq < 0 ? undefined : unquote(opt.slice(eq + 1));
        if (name === "cert-authority") signer.certAuthority = true;
        else if (name === "namespaces" && value !== undefined) signer.namespaces = value.split(",").filter(Boolean);
        else if ((name === "valid-after" || name === "valid-before") && value !== undefined) {
          const t = parseSshTime(value);
          if (t === undefined) throw new AuthError("BAD_REQUEST", `${where}: ${name}="${value.slice(0, 40)}" is not YYYYMMDD[HHMM[SS]][Z]`);
          if (name === "valid-after") signer.validAfter = t;
          else signer.validBefore = t;
        } else throw new AuthError("BAD_REQUEST", `${where}: unknown option "${opt.slice(0, 40)}"`);
      }
      k = 2;
    }
    const keyType = f[k];
    const b64 = f[k + 1];
    if (!keyType || !KEY_TYPE.test(keyType) || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      throw new AuthError("BAD_REQUEST", `${where}: expected a key type and a base64 key after the principals${k === 2 ? " and options" : ""}`);
    }
    signer.keyType = keyType;
    signer.keyBlob = Buffer.from(b64, "base64");
    if (keyType === "ssh-ed25519") {
      const key = publicKeyFromBlob(signer.keyBlob);
      if (!key) throw new AuthError("BAD_REQUEST", `${where}: malformed ssh-ed25519 key`);
      signer.key = key;
    }
    signers.push(signer as AllowedSigner);
  });
  return { source, signers };
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, "Z");
}

/**
 * Is `key` allowed to sign under `namespace` at `nowMs` (and, with `identity`, for that principal, as
 * `ssh-keygen -Y verify -I`)? Returns who signed; throws DENIED naming what failed: a key not in the
 * list, outside its valid-after/valid-before, a line limited to other namespaces, another principal.
 */
export function checkSigner(list: AllowedSigners, key: PublicKey, namespace: string, nowMs: number, identity?: string): Signer {
  const lines = list.signers.filter((s) => !s.certAuthority && s.keyBlob.equals(key.blob));
  if (lines.length === 0) {
    const ca = list.signers.some((s) => s.certAuthority) ? " (its cert-authority lines are not used: mf verifies plain keys, not certificates)" : "";
    throw new AuthError("DENIED", `signed by ssh-ed25519 ${key.fingerprint}, a key not in ${list.source}${ca}`);
  }
  const reasons: string[] = [];
  for (const s of lines) {
    const who = `key ${key.fingerprint} of ${s.principals.join(",")} (${list.source}:${s.line})`;
    if (s.namespaces && !matchPatternList(namespace, s.namespaces)) reasons.push(`${who} may sign only for namespaces ${s.namespaces.join(",")}, not ${namespace}`);
    else if (s.validBefore !== undefined && nowMs > s.validBefore) reasons.push(`${who} expired at ${when(s.validBefore)} (valid-before)`);
    else if (s.validAfter !== undefined && nowMs < s.validAfter) reasons.push(`${who} is not valid before ${when(s.validAfter)} (valid-after)`);
    else if (identity !== undefined && !matchPatternList(identity, s.principals)) reasons.push(`${who} is not allowed to sign as ${identity}`);
    else return { principals: s.principals, fingerprint: fingerprint(key.blob), keyType: s.keyType };
  }
  throw new AuthError("DENIED", reasons.join("; "));
}
