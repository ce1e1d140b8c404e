/** Manifest and config types of the image format (compat.md §3), with validation of what we read. */
import { MfError } from "./errors.js";
import { isDigest } from "./digest.js";
import { MediaType } from "./mediatypes.js";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  /** model this layer was inherited from (cross-repository mount on push) */
  from?: string;
  annotations?: Record<string, string>;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/**
 * The draft model stored in the same image (Ollama's `model.Draft`, types/model/config.go): Ollama's
 * create writes `model_format` ("gguf") and `architecture` (the draft GGUF's general.architecture).
 */
export interface DraftConfig {
  model_format?: string;
  architecture?: string;
  tensor_prefix?: string;
  config?: string;
}

/** The config blob, fields in Ollama's order. */
export interface ModelConfig {
  model_format: string;
  model_family: string;
  model_families: string[];
  model_type: string;
  file_type: string;
  requires?: string;
  draft?: DraftConfig;
  architecture: string;
  os: string;
}

/** Manifests and configs are small; they are read whole, up to this many bytes. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024 + 64 * 1024;

function isDescriptor(d: unknown): d is Descriptor {
  const x = d as Descriptor;
  return !!x && typeof x === "object" && typeof x.mediaType === "string" && typeof x.digest === "string" &&
    isDigest(x.digest) && typeof x.size === "number" && Number.isSafeInteger(x.size) && x.size >= 0;
}

/** Parses manifest bytes into an image manifest (docker v2 or OCI), or throws MANIFEST_INVALID. */
export function parseManifest(bytes: Uint8Array | string): Manifest {
  let m: unknown;
  try {
    m = JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw new MfError("MANIFEST_INVALID", "manifest is not valid JSON", { cause: e });
  }
  const x = m as Manifest;
  if (!x || typeof x !== "object" || x.schemaVersion !== 2) {
    throw new MfError("MANIFEST_INVALID", "manifest schemaVersion must be 2");
  }
  if (!isDescriptor(x.config)) throw new MfError("MANIFEST_INVALID", "manifest config descriptor is invalid");
  if (!Array.isArray(x.layers) || !x.layers.every(isDescriptor)) {
    throw new MfError("MANIFEST_INVALID", "manifest layers are invalid");
  }
  if (x.mediaType === undefined) x.mediaType = MediaType.ociManifest;
  return x;
}

/** Serialises a manifest the way mf writes them: compact JSON, fields in a fixed order. */
export function serializeManifest(m: Manifest): Buffer {
  const desc = (d: Descriptor) => {
    const o: Record<string, unknown> = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    if (d.from !== undefined) o.from = d.from;
    return o;
  };
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: m.mediaType,
    config: desc(m.config),
    layers: m.layers.map(desc),
  }));
}

/** An Ollama image's manifest: a Docker v2 manifest over its config blob and layers (what `mf build` and a converting pull write). */
export function ollamaManifest(config: { digest: string; size: number }, layers: Descriptor[]): Manifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: config.digest, size: config.size },
    layers,
  };
}
