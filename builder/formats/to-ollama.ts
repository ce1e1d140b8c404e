/**
 * A CNCF ModelPack, Docker Model Runner or KitOps ModelKit image that carries one GGUF, written again as an
 * Ollama image so that mf serve and stock Ollama run it: the GGUF becomes the model layer (a raw layer keeps
 * its blob, a `.tar` layer is extracted), licences become license layers, a Jinja chat template is kept as a
 * `application/vnd.docker.ai.chat.template.jinja` layer (mf serve renders a chat with it in place of the
 * GGUF's own; Ollama ignores layer types it does not know and uses the GGUF's), a projector stays a projector.
 * The config records where it came from (`mf_source`: format, manifest digest, name), since the new image
 * has a digest of its own. Sharded GGUFs are refused, as neither mf serve nor Ollama can run one from an
 * image yet. The rules followed, with their sources: docs/spec/model-formats.md.
 */
import { createGunzip, createZstdDecompress } from "node:zlib";
import { pipeline } from "node:stream/promises";
import { PassThrough, Transform, type Readable } from "node:stream";
import { BuildError, MfError } from "../../core/errors.js";
import { type Descriptor, type Manifest, type ModelConfig, ollamaManifest, serializeManifest } from "../../core/manifest.js";
import { MediaType } from "../../core/mediatypes.js";
import type { ProgressSink } from "../../core/progress.js";
import type { LocalStore } from "../../core/store.js";
import { parseTar, readEntry, type ReadEntry } from "../../core/tar.js";
import { readGgufInfo } from "../gguf.js";
import { DockerModel, FORMAT_NAMES, type ImageFormat, imageFormat, layerPath, parseLayerType, SHARD_NAME } from "./media.js";

/** Where a converted image came from, in its config. */
export interface ImageSource {
  format: ImageFormat;
  /** the source manifest's digest */
  digest: string;
  /** the name it was pulled or converted from */
  name: string;
}

export type OllamaConfig = ModelConfig & { mf_source?: ImageSource };

/** What a conversion reads of the source image, known from its manifest alone. */
export interface ConversionPlan {
  format: ImageFormat;
  /** the config and the layers the conversion reads (datasets, code and the like are not fetched) */
  needed: Descriptor[];
}

interface Roles {
  /** layers holding the GGUF: raw (the blob is the GGUF) or tar (extracted) */
  weights: { d: Descriptor; packing: "raw" | "tar" | "tar+gzip" | "tar+zstd"; path?: string }[];
  licenses: Descriptor[];
  /** doc tars that may hold a LICENSE file */
  docTars: { d: Descriptor; packing: "tar" | "tar+gzip" | "tar+zstd" }[];
  templates: Descriptor[];
  projectors: Descriptor[];
}

const LICENSE_NAME = /^(?:LICEN[CS]E|COPYING)(?:[.-][\w.-]*)?$/i;
const MAX_TEXT = 1 << 20;
const MAX_TAR_ENTRIES = 10_000;
/**
 * What a compressed tar layer may expand to: 64 times its size, plus 64 MiB. Weights hardly compress, so a
 * real layer stays far below; a small layer that expands without end (a compression bomb) is stopped.
 */
export function maxExpansion(compressedSize: number): number {
  return compressedSize * 64 + (64 << 20);
}

function basename(p: string): string {
  return p.split("/").filter(Boolean).at(-1) ?? p;
}

function roles(m: Manifest, format: ImageFormat, name: string): Roles {
  const r: Roles = { weights: [], licenses: [], docTars: [], templates: [], projectors: [] };
  for (const l of m.layers) {
    const path = layerPath(l.annotations);
    if (format === "docker-model") {
      if (l.mediaType === DockerModel.gguf) r.weights.push({ d: l, packing: "raw", path });
      else if (l.mediaType === DockerModel.license) r.licenses.push(l);
      else if (l.mediaType === DockerModel.chatTemplate) r.templates.push(l);
      else if (l.mediaType === DockerModel.mmproj) r.projectors.push(l);
      continue;
    }
    const t = parseLayerType(l.mediaType);
    if (!t) continue;
    const tarPacking = t.packing === "tar" || t.packing === "tar+gzip" || t.packing === "tar+zstd" ? t.packing : undefined;
    const raw = t.packing === "raw" || t.packing === "gguf";
    if (t.kind === "weight" || t.kind === "model") {
      if (path && /mmproj/i.test(basename(path)) && raw) r.projectors.push(l);
      else if (raw) {
        // a raw weight layer named as something other than a GGUF (safetensors, …) is not ours to run
        if (!path || /\.gguf$/i.test(path) || t.packing === "gguf") r.weights.push({ d: l, packing: "raw", path });
      } else if (tarPacking) r.weights.push({ d: l, packing: tarPacking, path });
    } else if (t.kind === "modelpart") {
      if (tarPacking || raw) r.weights.push({ d: l, packing: tarPacking ?? "raw", path });
    } else if (t.kind === "weight.config" && raw && path && /\.jinja$/i.test(path)) {
      r.templates.push(l);
    } else if (t.kind === "doc" || t.kind === "docs") {
      if (raw && path && LICENSE_NAME.test(basename(path))) r.licenses.push(l);
      else if (tarPacking) r.docTars.push({ d: l, packing: tarPacking });
    }
  }
  const shard = r.weights.find((w) => w.path && SHARD_NAME.test(w.path));
  const rawGgufs = r.weights.filter((w) => w.packing === "raw");
  if (shard || rawGgufs.length > 1) {
    throw new BuildError("BAD_REQUEST", `${name} holds a sharded GGUF (${shard?.path ?? `${rawGgufs.length} GGUF layers`}); mf cannot convert or serve sharded GGUFs yet: merge the shards into one file (llama.cpp's gguf-split --merge) and package that`);
  }
  if (!r.weights.length) throw new BuildError("BAD_REQUEST", `${name} is a ${FORMAT_NAMES[format]} image with no GGUF weights; mf converts only images that carry a GGUF`);
  return r;
}

/** Which blobs a conversion of `m` needs; throws (before anything is fetched) when it cannot be converted. */
export function planConversion(m: Manifest, name: string): ConversionPlan {
  const format = imageFormat(m);
  if (format === "ollama" || format === "other") return { format, needed: [m.config, ...m.layers] };
  const r = roles(m, format, name);
  const needed: Descriptor[] = [m.config];
  for (const d of [...r.weights.map((w) => w.d), ...r.projectors, ...r.licenses, ...r.templates, ...r.docTars.map((t) => t.d)]) {
    if (!needed.some((x) => x.digest === d.digest)) needed.push(d);
  }
  return { format, needed };
}

export interface ConversionResult {
  manifest: Manifest;
  bytes: Buffer;
  config: OllamaConfig;
  /** what was converted, one line each, for the user */
  summary: string[];
}

/**
 * Converts the foreign image `m` (the blobs planConversion named are in `store`) into an Ollama image.
 * Writes the new blobs (an extracted GGUF, licence texts, the config) and returns the manifest; writes no
 * manifest.
 */
export async function convertToOllama(
  store: LocalStore,
  m: Manifest,
  source: { digest: string; name: string },
  opts: { signal?: AbortSignal; onProgress?: ProgressSink } = {},
): Promise<ConversionResult> {
  const format = imageFormat(m);
  if (format === "ollama" || format === "other") throw new BuildError("BAD_REQUEST", `${source.name} is ${format === "ollama" ? "already an Ollama image" : "not a model image mf can read"}`);
  const r = roles(m, format, source.name);
  const emit = opts.onProgress ?? (() => {});
  const summary: string[] = [];
  const licenses: Descriptor[] = [...r.licenses];
  const templates: Descriptor[] = [...r.templates];
  const ggufs: { digest: string; size: number; from: string }[] = [];
  const created: string[] = [];
  try {
    for (const w of r.weights) {
      if (w.packing === "raw") {
        ggufs.push({ digest: w.d.digest, size: w.d.size, from: w.path ?? w.d.digest });
        continue;
      }
      emit({ status: `extracting ${short(w.d.digest)}` });
      await readTarLayer(store, w.d, w.packing, opts.signal, async (entry, path) => {
        if (/\.gguf$/i.test(path)) {
          if (SHARD_NAME.test(path) || ggufs.length) {
            throw new BuildError("BAD_REQUEST", `${source.name} holds a sharded GGUF (${path}${ggufs.length ? ` after ${ggufs[0]!.from}` : ""}); mf cannot convert or serve sharded GGUFs yet: merge the shards into one file (llama.cpp's gguf-split --merge) and package that`);
          }
          if (entry.type !== "File") throw new BuildError("BAD_REQUEST", `tar layer ${w.d.digest}: ${path} is a ${entry.type}, not a file; refused`);
          const out = await store.writeBlobStream(entry, { signal: opts.signal });
          if (out.created) created.push(out.digest);
          ggufs.push({ digest: out.digest, size: out.size, from: `${path} in ${short(w.d.digest)}` });
          return true;
        }
        return textEntry(store, entry, path, licenses, templates, created);
      });
    }
    for (const t of r.docTars) {
      await readTarLayer(store, t.d, t.packing, opts.signal, (entry, path) => textEntry(store, entry, path, licenses, templates, created));
    }
    if (ggufs.length !== 1) throw new BuildError("BAD_REQUEST", `${source.name}: no GGUF file found in its weight layers; mf converts only images that carry a GGUF`);
    const gguf = ggufs[0]!;
    let info;
    try {
      info = await readGgufInfo(store.blobPath(gguf.digest), opts.signal);
    } catch (e) {
      throw new BuildError("BAD_REQUEST", `${source.name}: its weights (${gguf.from}) are not a readable GGUF: ${(e as Error).message}`, { cause: e });
    }
    summary.push(`weights ${gguf.from} → model layer (${info.architecture || "unknown"} ${info.modelType} ${info.fileType})`);
    // a KitOps Kitfile or a ModelPack descriptor names the licence (an SPDX expression) when no file does
    if (!licenses.length) {
      const spdx = await declaredLicense(store, m.config.digest);
      if (spdx) {
        const w = await store.writeBlob(spdx);
        if (w.created) created.push(w.digest);
        licenses.push({ mediaType: MediaType.license, digest: w.digest, size: w.size });
      }
    }
    const layers: Descriptor[] = [{ mediaType: MediaType.model, digest: gguf.digest, size: gguf.size }];
    for (const p of r.projectors.slice(0, 1)) layers.push({ mediaType: MediaType.projector, digest: p.digest, size: p.size });
    for (const l of licenses) layers.push({ mediaType: MediaType.license, digest: l.digest, size: l.size });
    if (templates[0]) layers.push({ mediaType: DockerModel.chatTemplate, digest: templates[0].digest, size: templates[0].size });
    if (licenses.length) summary.push(`${licenses.length} licence${licenses.length > 1 ? "s" : ""} → license layer${licenses.length > 1 ? "s" : ""}`);
    if (templates[0]) summary.push("Jinja chat template → kept as a layer (mf serve renders chats with it; Ollama uses the GGUF's own)");
    if (r.projectors.length) summary.push("projector → projector layer");
    const config: OllamaConfig = {
      model_format: "gguf",
      model_family: info.architecture,
      model_families: r.projectors.length ? [info.architecture, "clip"] : [info.architecture],
      model_type: info.modelType,
      file_type: info.fileType,
      architecture: "amd64",
      os: "linux",
      mf_source: { format, digest: source.digest, name: source.name },
    };
    const cfg = await store.writeBlob(JSON.stringify(config));
    if (cfg.created) created.push(cfg.digest);
    const manifest = ollamaManifest(cfg, layers);
    return { manifest, bytes: serializeManifest(manifest), config, summary };
  } catch (e) {
    const referenced = await store.referencedBlobs().catch(() => new Set<string>());
    for (const d of created) if (!referenced.has(d)) await store.removeBlob(d).catch(() => {});
    throw e;
  }
}

function short(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

/** A LICENSE or `.jinja` entry of a tar, read (bounded) into a blob; other entries are skipped. */
async function textEntry(store: LocalStore, entry: ReadEntry, path: string, licenses: Descriptor[], templates: Descriptor[], created: string[]): Promise<boolean> {
  const isLicense = LICENSE_NAME.test(basename(path));
  const isTemplate = /\.jinja$/i.test(path);
  if (entry.type !== "File" || (!isLicense && !isTemplate) || (entry.size ?? 0) > MAX_TEXT) return false;
  const text = await readEntry(entry, MAX_TEXT);
  const w = await store.writeBlob(text);
  if (w.created) created.push(w.digest);
  (isLicense ? licenses : templates).push({ mediaType: isLicense ? MediaType.license : DockerModel.chatTemplate, digest: w.digest, size: w.size });
  return true;
}

/**
 * Streams a tar layer's entries to `onEntry` (which returns whether it consumed the entry). Every entry's
 * path is checked first: an absolute path or a `..` component is refused, since a path that climbs out
 * of the archive is an attack on whoever unpacks it. Nothing is written to a path from the archive.
 */
async function readTarLayer(
  store: LocalStore,
  d: Descriptor,
  packing: "tar" | "tar+gzip" | "tar+zstd",
  signal: AbortSignal | undefined,
  onEntry: (entry: ReadEntry, path: string) => Promise<boolean>,
): Promise<void> {
  let count = 0;
  const body: Readable = store.openBlob(d.digest);
  let input: Readable = body;
  let decompressing: Promise<void> | undefined;
  if (packing !== "tar") {
    const out = new PassThrough();
    const limit = maxExpansion(d.size);
    let expanded = 0;
    const bound = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        expanded += chunk.length;
        if (expanded > limit) cb(new BuildError("BAD_REQUEST", `tar layer ${d.digest} (${packing}, ${d.size} bytes) expands past ${limit} bytes; refused`));
        else cb(null, chunk);
      },
    });
    decompressing = pipeline(body, packing === "tar+gzip" ? createGunzip() : createZstdDecompress(), bound, out, { signal });
    // its failure also reaches the tar reader (out is destroyed with it) and is awaited below
    decompressing.catch(() => {});
    input = out;
  }
  try {
    await parseTar(input, signal, async (entry) => {
      if (++count > MAX_TAR_ENTRIES) throw new BuildError("BAD_REQUEST", `tar layer ${d.digest} has more than ${MAX_TAR_ENTRIES} entries; refused`);
      const path = entry.path;
      if (!isSafePath(path)) throw new BuildError("BAD_REQUEST", `tar layer ${d.digest}: entry "${path}" escapes the archive (an absolute path or a .. component); refused`);
      if (!(await onEntry(entry, path))) entry.resume();
    });
    await decompressing;
  } catch (e) {
    body.destroy();
    await decompressing?.catch(() => {});
    if (e instanceof MfError) throw e;
    throw new BuildError("BAD_REQUEST", `tar layer ${d.digest} is not a readable ${packing} archive: ${(e as Error).message}`, { cause: e });
  }
}

/** A relative path inside the archive: not absolute, no `..` component, no NUL, no Windows drive. */
export function isSafePath(p: string): boolean {
  if (!p || p.includes("\0") || p.startsWith("/") || p.startsWith("\\") || /^[a-zA-Z]:/.test(p)) return false;
  return !p.split(/[\\/]+/).some((part) => part === "..");
}

/** The licence a ModelPack descriptor (`licenses`) or a KitOps Kitfile (`package.license`, `model.license`) declares. */
async function declaredLicense(store: LocalStore, configDigest: string): Promise<string | undefined> {
  let c: { descriptor?: { licenses?: unknown }; package?: { license?: unknown }; model?: { license?: unknown } };
  try {
    c = JSON.parse((await store.readBlob(configDigest)).toString("utf8")) as typeof c;
  } catch {
    return undefined;
  }
  const l = c.descriptor?.licenses;
  if (Array.isArray(l) && l.length && l.every((x) => typeof x === "string")) return l.join(" AND ");
  for (const x of [c.model?.license, c.package?.license]) if (typeof x === "string" && x) return x;
  return undefined;
}
