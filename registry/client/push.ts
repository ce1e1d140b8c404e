/**
 * Push: `HEAD` each blob (present ones are skipped), a cross-repository mount for layers with `from`,
 * else a resumable upload (upload.ts); several blobs at once, bounded; the manifest last, byte for byte.
 */
import { RegistryError } from "../../core/errors.js";
import type { Descriptor } from "../../core/manifest.js";
import type { ModelRef } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import { manifestPath } from "../protocol/paths.js";
import { runParallel } from "./download.js";
import { discard, header, type RegistryHttp } from "./http.js";
import { wireFrom, wireRef } from "./names.js";
import { throttled } from "./progress.js";
import { shortHex, type TransferOptions } from "./pull.js";
import { blobExists, uploadBlob } from "./upload.js";
import { UploadSessions } from "./upload-sessions.js";

export interface PushSettings {
  /** bytes per PATCH (default 64 MiB; 0: one streamed request per blob) */
  chunkSize?: number;
  /** blobs sent at once (default 4) */
  blobConcurrency?: number;
}

export interface PushContext {
  http: RegistryHttp;
  settings: PushSettings;
}

export interface PushResult {
  /** the manifest digest the registry stored */
  digest: string;
  /** blobs skipped because the registry had them, mounted, and uploaded */
  skipped: number;
  mounted: number;
  uploaded: number;
}

export interface PushOptions extends TransferOptions {
  /**
   * With this, the manifest is put by digest, then this runs (it pushes the signature), then the tag is
   * put: the order a registry that requires signatures at tag time needs.
   */
  beforeTag?: (manifest: { digest: string; mediaType: string; size: number }) => Promise<void>;
}

/** Pushes the local model `name` to the registry its name points at. */
export async function push(ctx: PushContext, store: LocalStore, name: ModelRef | string, opts: PushOptions = {}): Promise<PushResult> {
  const w = wireRef(name, opts);
  const emit = opts.onProgress ?? (() => {});
  emit({ status: "retrieving manifest" });
  const model = await store.readModel(w.ref);
  const uniq: Descriptor[] = [];
  for (const d of [...model.manifest.layers, model.manifest.config]) if (!uniq.some((b) => b.digest === d.digest)) uniq.push(d);
  for (const d of uniq) {
    const have = await store.blobSize(d.digest);
    if (have !== d.size) throw new RegistryError("BLOB_UNKNOWN", `blob ${d.digest} of ${name} is ${have === undefined ? "missing from" : "damaged in"} the local store`);
  }
  const sessions = new UploadSessions(store.root);
  const result: PushResult = { digest: model.digest, skipped: 0, mounted: 0, uploaded: 0 };
  await runParallel(uniq, ctx.settings.blobConcurrency ?? 4, async (d) => {
    const status = `pushing ${shortHex(d.digest)}`;
    const report = throttled((completed) => emit({ status, digest: d.digest, total: d.size, completed }));
    const size = await blobExists(ctx.http, w, d.digest, opts.signal);
    if (size !== undefined) {
      result.skipped++;
      await sessions.delete(w.base, w.name, d.digest);
      report(d.size, true);
      return;
    }
    const from = d.from ? wireFrom(d.from, w.ref.host) : undefined;
    const how = await uploadBlob({
      http: ctx.http, store, sessions, w, digest: d.digest, size: d.size, chunkSize: ctx.settings.chunkSize,
      mountFrom: from && from !== w.name ? from : undefined, signal: opts.signal,
      onProgress: (c) => report(c, c === 0 || c >= d.size),
    });
    if (how === "mounted") result.mounted++;
    else result.uploaded++;
    report(d.size, true);
  });
  emit({ status: "pushing manifest" });
  const putManifest = async (reference: string) => {
    const res = await ctx.http.send({
      method: "PUT",
      url: w.base + manifestPath(w.name, reference),
      headers: { "content-type": model.manifest.mediaType },
      body: () => model.bytes,
      signal: opts.signal,
      ok: (s) => s === 201 || s === 200 || s === 202,
    });
    discard(res.body);
    const got = header(res, "docker-content-digest");
    if (got && got.startsWith("sha256:") && got !== model.digest) {
      throw new RegistryError("DIGEST_INVALID", `the registry stored the manifest under ${got}, not ${model.digest}`);
    }
  };
  if (opts.beforeTag) {
    // by digest first, then what must come before the tag (a signature), then the tag
    await putManifest(model.digest);
    await opts.beforeTag({ digest: model.digest, mediaType: model.manifest.mediaType, size: model.bytes.length });
  }
  await putManifest(w.tag);
  emit({ status: "success" });
  return result;
}
