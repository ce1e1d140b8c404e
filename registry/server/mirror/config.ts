/**
 * Mirror settings: which local namespace mirrors which upstream registry, with what credentials, and
 * which repositories may be mirrored (the allow-list). Checked once at start, so a typo is a message.
 */
import { MfError } from "../../../core/errors.js";

export interface UpstreamCredentials {
  /** basic auth (also sent to a Bearer realm for a token, as Docker Hub asks) */
  username?: string;
  password?: string;
  /** a fixed bearer token */
  token?: string;
  /** an OpenSSH ed25519 private key (PEM text): Ollama's signed token requests, only to the upstream's own host */
  sshKey?: string;
}

export interface MirrorSpec {
  /** the local namespace: the first segment of the local name (`ollama` in `ollama/library/llama3`) */
  namespace: string;
  /**
   * the upstream registry (`https://registry.ollama.ai`), optionally with a namespace that upstream names
   * start with (`https://registry.ollama.ai/library`: local `ollama/llama3` is upstream `library/llama3`,
   * a two-part name that Ollama and mf clients can spell)
   */
  upstream: string;
  credentials?: UpstreamCredentials;
  /**
   * local names that may be mirrored: `ollama/library/llama3` (that repository), `ollama/library/*` (one
   * level below), `ollama/**` (anything below). Undefined: every name under the namespace.
   */
  allow?: string[];
}

const SEGMENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

/** `NS=URL` (the `--mirror` flag). */
export function parseMirrorFlag(text: string): MirrorSpec {
  const eq = text.indexOf("=");
  if (eq <= 0) throw new MfError("BAD_REQUEST", `--mirror "${text}": expected NAMESPACE=URL, e.g. --mirror ollama=https://registry.ollama.ai`);
  return checkMirror({ namespace: text.slice(0, eq), upstream: text.slice(eq + 1) });
}

/** A mirror's settings checked; the upstream URL normalised to `scheme://host[:port]`. */
export function checkMirror(spec: MirrorSpec): MirrorSpec {
  const where = `mirror "${String(spec.namespace)}"`;
  if (typeof spec.namespace !== "string" || !SEGMENT.test(spec.namespace)) {
    throw new MfError("BAD_REQUEST", `${where}: the namespace must be one lowercase name segment (like ollama or hub)`);
  }
  let u: URL;
  try {
    u = new URL(String(spec.upstream));
  } catch {
    throw new MfError("BAD_REQUEST", `${where}: upstream "${String(spec.upstream)}" is not a URL (expected e.g. https://registry-1.docker.io)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new MfError("BAD_REQUEST", `${where}: only http:// and https:// upstreams`);
  const prefix = u.pathname.replace(/^\/+|\/+$/g, "");
  if (u.username || u.password || u.search || u.hash || (prefix && !prefix.split("/").every((p) => SEGMENT.test(p)))) {
    throw new MfError("BAD_REQUEST", `${where}: the upstream is scheme://host[:port][/namespace] (credentials go in the config file)`);
  }
  for (const p of spec.allow ?? []) allowPattern(p);
  return { ...spec, upstream: prefix ? `${u.origin}/${prefix}` : u.origin };
}

/** An allow-list entry as a regular expression over local names. */
export function allowPattern(p: string): RegExp {
  const parts = String(p).split("/");
  if (!parts.every((s) => s === "*" || s === "**" || SEGMENT.test(s))) {
    throw new MfError("BAD_REQUEST", `--mirror-allow "${p}": expected a repository name whose segments may be * (one) or ** (any below)`);
  }
  const re = parts.map((s) => (s === "**" ? "[^]+" : s === "*" ? "[^/]+" : s.replace(/\./g, "\\."))).join("/");
  return new RegExp(`^${re}$`);
}

/** Joins allow-list entries to the mirrors whose namespace they name (`--mirror-allow ollama/library/*`). */
export function assignAllowList(mirrors: MirrorSpec[], entries: string[]): MirrorSpec[] {
  const out = mirrors.map((m) => ({ ...m, allow: m.allow ? [...m.allow] : undefined }));
  for (const e of entries) {
    allowPattern(e);
    const ns = e.split("/")[0];
    const m = out.find((x) => x.namespace === ns);
    if (!m) throw new MfError("BAD_REQUEST", `--mirror-allow "${e}": no --mirror for the namespace "${ns}"`);
    (m.allow ??= []).push(e);
  }
  return out;
}
