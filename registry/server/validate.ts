/** Names, tags, digests and session ids, checked before they touch a storage path (registry.md). */
import { assertDigest, type ParsedDigest } from "../../core/digest.js";
import { RegistryError } from "../../core/errors.js";

const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MAX_NAME_LENGTH = 255;

export function assertName(name: string): string {
  if (name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new RegistryError("NAME_INVALID", `invalid repository name "${name.slice(0, 300)}"`, { detail: { name: name.slice(0, 300) } });
  }
  return name;
}

export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

export function assertTag(tag: string): string {
  if (!TAG_RE.test(tag)) throw new RegistryError("TAG_INVALID", `invalid tag "${tag.slice(0, 200)}"`, { detail: { tag: tag.slice(0, 200) } });
  return tag;
}

export function checkDigest(s: string): ParsedDigest {
  try {
    return assertDigest(s);
  } catch {
    throw new RegistryError("DIGEST_INVALID", `invalid digest "${s.slice(0, 200)}"`, { detail: { digest: s.slice(0, 200) } });
  }
}

/** A manifest reference: a digest when it contains ':', else a tag. */
export type ManifestRef = { kind: "digest"; digest: ParsedDigest; text: string } | { kind: "tag"; tag: string; text: string };

export function parseManifestRef(s: string): ManifestRef {
  if (s.includes(":")) return { kind: "digest", digest: checkDigest(s), text: s };
  return { kind: "tag", tag: assertTag(s), text: s };
}

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

export function digestString(d: ParsedDigest): string {
  return `${d.algorithm}:${d.hex}`;
}
