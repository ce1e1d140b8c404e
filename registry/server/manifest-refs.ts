/**
 * What the registry needs to know of a manifest, whatever its media type: the blobs and manifests it
 * references (checked on PUT, marked by GC) and its `subject` (indexed for the referrers API). The bytes
 * themselves are stored untouched.
 */
import type { ParsedDigest } from "../../core/digest.js";
import { RegistryError } from "../../core/errors.js";
import { MediaType } from "../../core/mediatypes.js";
import { checkDigest } from "./validate.js";

export interface ManifestFacts {
  mediaType: string;
  /** config and layers (image manifests), blobs (artifact manifests) */
  blobs: ParsedDigest[];
  /** non-distributable layers that name `urls` to fetch them from: their blobs may live only there */
  foreign: ForeignLayer[];
  /** child manifests (indexes) */
  manifests: ParsedDigest[];
  subject?: ParsedDigest;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ForeignLayer {
  digest: ParsedDigest;
  urls: string[];
}

interface RawDescriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  urls?: unknown;
}

/** OCI's non-distributable layer types and Docker's foreign layers. */
const NON_DISTRIBUTABLE = /^(?:application\/vnd\.oci\.image\.layer\.nondistributable\.v1\.tar(?:\+[a-z0-9]+)?|application\/vnd\.docker\.image\.rootfs\.foreign\.diff\.tar(?:\.gzip)?)$/;

/** Content types that say nothing about which manifest it is (the body's `mediaType` decides). */
const GENERIC_TYPES = new Set(["application/octet-stream", "application/json"]);

function invalid(message: string): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message);
}

function descriptorDigest(d: unknown, where: string): ParsedDigest {
  const x = d as RawDescriptor | null;
  if (!x || typeof x !== "object" || typeof x.digest !== "string" || typeof x.size !== "number" || !Number.isSafeInteger(x.size) || x.size < 0) {
    throw invalid(`${where}: descriptor needs a digest and a size`);
  }
  try {
    return checkDigest(x.digest);
  } catch {
    throw invalid(`${where}: invalid digest`);
  }
}

function descriptorList(v: unknown, where: string): ParsedDigest[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw invalid(`${where} must be a list`);
  return v.map((d, i) => descriptorDigest(d, `${where}[${i}]`));
}

/** Reads the facts of manifest bytes; `contentType` is the PUT's Content-Type. */
export function manifestFacts(bytes: Buffer, contentType: string | undefined): ManifestFacts {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw invalid("manifest is not valid JSON");
  }
  if (!m || typeof m !== "object" || Array.isArray(m)) throw invalid("manifest must be a JSON object");
  const declared = typeof m.mediaType === "string" ? m.mediaType : undefined;
  const header = contentType?.split(";")[0]?.trim().toLowerCase() || undefined;
  const headerType = header && !GENERIC_TYPES.has(header) ? header : undefined;
  if (declared !== undefined && headerType !== undefined && declared.toLowerCase() !== headerType) {
    throw invalid(`Content-Type ${headerType.slice(0, 200)} contradicts the manifest's mediaType ${declared.slice(0, 200)}`);
  }
  const mediaType = declared ?? headerType ?? (Array.isArray(m.manifests) ? MediaType.ociIndex : MediaType.ociManifest);
  if (m.schemaVersion !== 2 && m.schemaVersion !== undefined) throw invalid("only schemaVersion 2 manifests are accepted");
  const facts: ManifestFacts = { mediaType, blobs: [], foreign: [], manifests: [] };
  if (m.config !== undefined) facts.blobs.push(descriptorDigest(m.config, "config"));
  const layers = descriptorList(m.layers, "layers");
  layers.forEach((digest, i) => {
    const d = (m.layers as RawDescriptor[])[i]!;
    if (typeof d.mediaType !== "string" || !NON_DISTRIBUTABLE.test(d.mediaType) || !Array.isArray(d.urls) || d.urls.length === 0) return;
    if (!d.urls.every((u): u is string => typeof u === "string")) throw invalid(`layers[${i}]: urls must be strings`);
    facts.foreign.push({ digest, urls: d.urls });
  });
  facts.blobs.push(...layers, ...descriptorList(m.blobs, "blobs"));
  facts.manifests = descriptorList(m.manifests, "manifests");
  if (m.subject !== undefined) facts.subject = descriptorDigest(m.subject, "subject");
  if (typeof m.artifactType === "string") facts.artifactType = m.artifactType;
  else if (m.config && typeof (m.config as RawDescriptor).mediaType === "string" && facts.subject) {
    // OCI: a manifest without artifactType is listed with its config's media type.
    facts.artifactType = (m.config as RawDescriptor).mediaType as string;
  }
  if (m.annotations && typeof m.annotations === "object" && !Array.isArray(m.annotations)) {
    facts.annotations = m.annotations as Record<string, string>;
  }
  const isImage = mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
  if (isImage && (m.config === undefined || !Array.isArray(m.layers))) throw invalid("an image manifest needs config and layers");
  const isIndex = mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
  if (isIndex && !Array.isArray(m.manifests)) throw invalid("an index needs manifests");
  return facts;
}
