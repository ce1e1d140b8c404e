/**
 * Model references `[scheme://][host/][namespace/]model[:tag]` (compat.md §2): parsing, validation and
 * the shortest display form.
 */
import { MfError } from "./errors.js";

export const DEFAULT_HOST = "registry.ollama.ai";
export const DEFAULT_NAMESPACE = "library";
export const DEFAULT_TAG = "latest";

export interface ModelRef {
  scheme?: string;
  host: string;
  namespace: string;
  model: string;
  tag: string;
}

const HOST_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}$/;
const NS_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$/;
const PART_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$/;

export function tryParseRef(input: string): ModelRef | null {
  let s = input.trim();
  let scheme: string | undefined;
  const sm = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (sm) {
    scheme = sm[1]!.toLowerCase();
    s = s.slice(sm[0].length);
  }
  let tag = DEFAULT_TAG;
  const colon = s.lastIndexOf(":");
  if (colon > s.lastIndexOf("/")) {
    tag = s.slice(colon + 1);
    s = s.slice(0, colon);
  }
  const parts = s.split("/");
  if (parts.length > 3 || parts.some((p) => p === "")) return null;
  const model = parts.pop()!;
  const namespace = parts.length ? parts.pop()! : DEFAULT_NAMESPACE;
  const host = parts.length ? parts.pop()! : DEFAULT_HOST;
  if (!HOST_RE.test(host) || !NS_RE.test(namespace) || !PART_RE.test(model) || !PART_RE.test(tag)) return null;
  if (host.includes("..") ) return null;
  const ref: ModelRef = { host, namespace, model, tag };
  if (scheme) ref.scheme = scheme;
  return ref;
}

/** Parses and validates a model name, or throws NAME_INVALID with the rules in the message. */
export function parseRef(input: string): ModelRef {
  const r = tryParseRef(input);
  if (!r) {
    throw new MfError(
      "NAME_INVALID",
      `invalid model name "${input.slice(0, 400)}": expected [host/][namespace/]model[:tag], ` +
        "parts of letters, digits, '_', '-' and '.' (namespace without '.') starting with a letter, digit or '_'",
    );
  }
  return r;
}

/** Full form: host/namespace/model:tag. */
export function formatRef(r: ModelRef): string {
  return `${r.host}/${r.namespace}/${r.model}:${r.tag}`;
}

/** Shortest display form: drops the default host and `library/`; keeps the tag. */
export function displayRef(r: ModelRef): string {
  let s = `${r.model}:${r.tag}`;
  if (r.host !== DEFAULT_HOST) s = `${r.host}/${r.namespace}/${s}`;
  else if (r.namespace !== DEFAULT_NAMESPACE) s = `${r.namespace}/${s}`;
  return s;
}

/** Case-insensitive identity of a reference, for lookups against existing names. */
export function refKey(r: ModelRef): string {
  return formatRef(r).toLowerCase();
}

/** The store path parts `manifests/<host>/<namespace>/<model>/<tag>`. */
export function refPathParts(r: ModelRef): [string, string, string, string] {
  return [r.host, r.namespace, r.model, r.tag];
}
