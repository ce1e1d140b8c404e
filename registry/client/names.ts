/** How a model reference is spelled on the wire: base URL, lowercased repository name, tag. */
import { RegistryError } from "../../core/errors.js";
import { type ModelRef, displayRef, parseRef } from "../../core/reference.js";
import { OCI_NAME_MAX, OCI_NAME_RE, OCI_TAG_RE } from "../protocol/paths.js";

export interface WireRef {
  /** `http(s)://host[:port]` */
  base: string;
  /** `<namespace>/<model>`, lowercased */
  name: string;
  tag: string;
  /** the reference as the user gave it */
  ref: ModelRef;
}

/**
 * Spells a reference for the registry, or refuses it (NAME_INVALID) before any request is made.
 * `insecure` (or an `http://` scheme) selects plain HTTP.
 */
export function wireRef(refOrName: ModelRef | string, opts: { insecure?: boolean } = {}): WireRef {
  const ref = typeof refOrName === "string" ? parseRef(refOrName) : refOrName;
  const name = `${ref.namespace}/${ref.model}`.toLowerCase();
  if (name.length > OCI_NAME_MAX || !OCI_NAME_RE.test(name)) {
    throw new RegistryError(
      "NAME_INVALID",
      `"${displayRef(ref)}" cannot be spelled as an OCI repository name: the namespace and model must start and end ` +
        "with a letter or digit, with '.', '_', '__' or '-' only between them",
    );
  }
  if (!OCI_TAG_RE.test(ref.tag)) throw new RegistryError("TAG_INVALID", `invalid tag "${ref.tag}"`);
  const scheme = ref.scheme === "http" || opts.insecure ? "http" : ref.scheme === "https" || !ref.scheme ? "https" : undefined;
  if (!scheme) throw new RegistryError("NAME_INVALID", `unsupported scheme "${ref.scheme}://" (use http:// or https://)`);
  return { base: `${scheme}://${ref.host.toLowerCase()}`, name, tag: ref.tag, ref };
}

/**
 * Wire name of a layer's `from` (`namespace/model`, as Ollama and the builder write it, or a full
 * `host/namespace/model[:tag]`) for a cross-repository mount; undefined when it names another host or
 * cannot be spelled.
 */
export function wireFrom(from: string, host: string): string | undefined {
  let parts = from.split("/");
  if (parts.length === 3) {
    if (parts[0]!.toLowerCase() !== host.toLowerCase()) return undefined;
    parts = parts.slice(1);
  }
  if (parts.length !== 2) return undefined;
  const last = parts[1]!;
  const colon = last.lastIndexOf(":");
  const name = `${parts[0]}/${colon >= 0 ? last.slice(0, colon) : last}`.toLowerCase();
  return name.length <= OCI_NAME_MAX && OCI_NAME_RE.test(name) ? name : undefined;
}
