/**
 * `mf load`: an OCI layout tar (mf's `save`, skopeo's `oci-archive:`) into the store. Every blob is
 * hashed while it is read and must match its name; a corrupt or truncated archive stores nothing (blobs
 * this load created are removed again). An index entry annotated with `io.mf.original-manifest` is
 * restored from those exact bytes (same digest as before `save`); others are imported as they are.
 */
import type { Readable } from "node:stream";
import { MfError, StoreError } from "../../core/errors.js";
import { MAX_MANIFEST_BYTES, parseManifest } from "../../core/manifest.js";
import type { ProgressSink } from "../../core/progress.js";
import { type ModelRef, tryParseRef } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import { parseTar, readEntry } from "../../core/tar.js";
import { ORIGINAL_MANIFEST_ANNOTATION, REF_NAME_ANNOTATION } from "./archive-save.js";

export interface LoadOptions {
  signal?: AbortSignal;
  onProgress?: ProgressSink;
  /** name for an entry without a usable `org.opencontainers.image.ref.name` (only with one entry) */
  name?: string;
}

export interface LoadResult {
  models: { ref: ModelRef; digest: string }[];
}

interface IndexJson {
  manifests?: { digest: string; mediaType?: string; annotations?: Record<string, string> }[];
}

const BLOB_PATH = /^(?:\.\/)?blobs\/sha256\/([0-9a-f]{64})$/;

export async function loadArchive(store: LocalStore, input: Readable, opts: LoadOptions = {}): Promise<LoadResult> {
  const created: string[] = [];
  let index: IndexJson | undefined;
  let layout = false;
  const emit = opts.onProgress ?? (() => {});
  try {
    await parseTar(input, opts.signal, async (entry) => {
      const path = entry.path;
      if (path === "oci-layout" || path === "./oci-layout") {
        layout = true;
        entry.resume();
        return;
      }
      if (path === "index.json" || path === "./index.json") {
        index = JSON.parse((await readEntry(entry, MAX_MANIFEST_BYTES)).toString("utf8")) as IndexJson;
        return;
      }
      const m = BLOB_PATH.exec(path);
      if (!m || entry.type !== "File") {
        entry.resume();
        return;
      }
      const digest = `sha256:${m[1]}`;
      const size = entry.size ?? 0;
      const status = `loading ${m[1]!.slice(0, 12)}`;
      let last = 0;
      const r = await store.writeBlobStream(entry, {
        expected: digest,
        signal: opts.signal,
        onProgress: (n) => {
          if (n - last >= 16 << 20 || n === size) {
            last = n;
            emit({ status, digest, total: size, completed: n });
          }
        },
      }).catch((e: unknown) => {
        throw e instanceof MfError && e.code === "DIGEST_INVALID"
          ? new StoreError("DIGEST_INVALID", `archive entry ${path} does not match its digest: the archive is corrupt or truncated; nothing was loaded`, { cause: e })
          : e;
      });
      if (r.size !== size) throw new StoreError("DIGEST_INVALID", `archive entry ${path} is truncated; nothing was loaded`);
      if (r.created) created.push(digest);
    });
    if (!layout || !index || !Array.isArray(index.manifests)) {
      throw new StoreError("BAD_REQUEST", "not an OCI image layout archive (oci-layout and index.json are required)");
    }
    const entries = index.manifests;
    const plans: { ref: ModelRef; bytes: Buffer }[] = [];
    for (const e of entries) {
      const original = e.annotations?.[ORIGINAL_MANIFEST_ANNOTATION];
      const bytes = (original ? await blobOrUndefined(store, original) : undefined) ?? (await blobOrUndefined(store, e.digest));
      if (!bytes) throw new StoreError("BLOB_UNKNOWN", `archive lacks manifest ${e.digest}; nothing was loaded`);
      const manifest = parseManifest(bytes);
      for (const d of [manifest.config, ...manifest.layers]) {
        if (!(await store.hasBlob(d.digest))) throw new StoreError("BLOB_UNKNOWN", `archive lacks blob ${d.digest} of ${e.digest}; nothing was loaded`);
      }
      const name = e.annotations?.[REF_NAME_ANNOTATION];
      const ref = (name ? tryParseRef(name) : null) ?? (opts.name && entries.length === 1 ? tryParseRef(opts.name) : null);
      if (!ref) {
        throw new StoreError("NAME_INVALID", `archive entry ${e.digest} has no usable name (${REF_NAME_ANNOTATION}: ${JSON.stringify(name ?? null)}); give one with --name`);
      }
      plans.push({ ref, bytes });
    }
    const models: LoadResult["models"] = [];
    for (const p of plans) models.push(await store.writeManifest(p.ref, p.bytes));
    // manifests travelled as blobs; a blob no image references is not kept
    const referenced = await store.referencedBlobs();
    for (const d of created) if (!referenced.has(d)) await store.removeBlob(d);
    emit({ status: "success" });
    return { models };
  } catch (e) {
    for (const d of created) await store.removeBlob(d).catch(() => {});
    throw e;
  }
}

async function blobOrUndefined(store: LocalStore, digest: string): Promise<Buffer | undefined> {
  try {
    return await store.readBlob(digest);
  } catch {
    return undefined;
  }
}
