/**
 * `mf save`: models as an OCI image layout in a tar (what skopeo calls `oci-archive:`), streamed: tar
 * headers from the `tar` package, blob bodies straight from the store (no temp copy of multi-GB blobs).
 *
 *   oci-layout                     {"imageLayoutVersion":"1.0.0"}
 *   index.json                     one entry per model: its OCI image manifest, annotated with the
 *                                  name (`org.opencontainers.image.ref.name`) and the digest of the
 *                                  original manifest bytes (`io.mf.original-manifest`)
 *   blobs/sha256/<hex>             configs, layers, OCI manifests and the original manifests
 *
 * Each image is written as an OCI image manifest (skopeo 1.9 reads no other form for these layer types);
 * its original manifest travels as a blob so `mf load` restores the exact image (same digest).
 */
import { createReadStream } from "node:fs";
import type { Writable } from "node:stream";
import { once } from "node:events";
import { Header } from "tar";
import { digestOf } from "../../core/digest.js";
import type { Descriptor, Manifest } from "../../core/manifest.js";
import { MediaType } from "../../core/mediatypes.js";
import type { ProgressSink } from "../../core/progress.js";
import { formatRef, type ModelRef } from "../../core/reference.js";
import type { LocalStore, StoredModel } from "../../core/store.js";

export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
export const ORIGINAL_MANIFEST_ANNOTATION = "io.mf.original-manifest";

const BLOCK = 512;
const MTIME = new Date(0);

/** The image as an OCI image manifest: the same config and layers, without Ollama's `from`. */
export function toOciManifest(m: Manifest): Buffer {
  const desc = (d: Descriptor, mediaType = d.mediaType) => ({ mediaType, digest: d.digest, size: d.size });
  const config = m.config.mediaType === MediaType.dockerConfig ? MediaType.ociConfig : m.config.mediaType;
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: desc(m.config, config),
    layers: m.layers.map((l) => desc(l)),
  }));
}

class TarWriter {
  constructor(private readonly out: Writable, private readonly signal?: AbortSignal) {}

  private async write(buf: Buffer): Promise<void> {
    this.signal?.throwIfAborted();
    if (!this.out.write(buf)) await once(this.out, "drain", { signal: this.signal });
  }

  private header(path: string, size: number): Buffer {
    const h = new Header({ path, size, mode: 0o644, mtime: MTIME, type: "File", uid: 0, gid: 0, uname: "", gname: "" });
    const block = Buffer.alloc(BLOCK);
    h.encode(block, 0);
    return block;
  }

  private async pad(size: number): Promise<void> {
    const rem = size % BLOCK;
    if (rem) await this.write(Buffer.alloc(BLOCK - rem));
  }

  async bytes(path: string, data: Buffer): Promise<void> {
    await this.write(this.header(path, data.length));
    await this.write(data);
    await this.pad(data.length);
  }

  async file(path: string, source: string, size: number, onBytes?: (n: number) => void): Promise<void> {
    await this.write(this.header(path, size));
    let n = 0;
    for await (const c of createReadStream(source, { highWaterMark: 1 << 20, signal: this.signal })) {
      n += (c as Buffer).length;
      if (n > size) throw new Error(`${source} grew while it was being saved`);
      await this.write(c as Buffer);
      onBytes?.(n);
    }
    if (n !== size) throw new Error(`${source} is ${n} bytes, expected ${size}`);
    await this.pad(size);
  }

  async end(): Promise<void> {
    await this.write(Buffer.alloc(BLOCK * 2));
  }
}

export interface SaveOptions {
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

/** Writes `names` from `store` to `out` as an OCI layout tar. Does not end `out`. */
export async function saveModels(store: LocalStore, names: (string | ModelRef)[], out: Writable, opts: SaveOptions = {}): Promise<{ models: StoredModel[] }> {
  const models: StoredModel[] = [];
  for (const n of names) models.push(await store.readModel(n));
  const small = new Map<string, Buffer>(); // manifests written from memory
  const entries: unknown[] = [];
  for (const m of models) {
    const oci = toOciManifest(m.manifest);
    const ociDigest = digestOf(oci);
    small.set(ociDigest, oci);
    small.set(m.digest, m.bytes);
    entries.push({
      mediaType: MediaType.ociManifest,
      digest: ociDigest,
      size: oci.length,
      annotations: { [REF_NAME_ANNOTATION]: formatRef(m.ref), [ORIGINAL_MANIFEST_ANNOTATION]: m.digest },
    });
  }
  const tar = new TarWriter(out, opts.signal);
  await tar.bytes("oci-layout", Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })));
  await tar.bytes("index.json", Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries })));
  const written = new Set<string>();
  const emit = opts.onProgress ?? (() => {});
  for (const m of models) {
    for (const d of [m.manifest.config, ...m.manifest.layers]) {
      if (written.has(d.digest)) continue;
      written.add(d.digest);
      const status = `copying ${d.digest.slice(7, 19)}`;
      let last = 0;
      await tar.file(`blobs/sha256/${d.digest.slice(7)}`, store.blobPath(d.digest), d.size, (n) => {
        if (n - last >= 16 << 20 || n === d.size) {
          last = n;
          emit({ status, digest: d.digest, total: d.size, completed: n });
        }
      });
      if (d.size === 0) emit({ status, digest: d.digest, total: 0, completed: 0 });
    }
  }
  for (const [digest, data] of small) {
    if (written.has(digest)) continue;
    written.add(digest);
    await tar.bytes(`blobs/sha256/${digest.slice(7)}`, data);
  }
  await tar.end();
  return { models };
}
