/**
 * Pull: the manifest first (kept byte for byte, so the local digest is the registry's), then every blob
 * the store lacks (downloadBlob: ranged parts, resumable, verified), then the manifest, atomically.
 */
import { digestOf, parseDigest } from "../../core/digest.js";
import { MfError, RegistryError } from "../../core/errors.js";
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type Manifest } from "../../core/manifest.js";
import { MANIFEST_ACCEPT, MediaType } from "../../core/mediatypes.js";
import type { ProgressSink } from "../../core/progress.js";
import type { ModelRef } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import { blobPath, manifestPath } from "../protocol/paths.js";
import { clearLeftovers, downloadBlob, runParallel } from "./download.js";
import { header, httpStatusOf, readAll, type RegistryHttp } from "./http.js";
import { wireRef, type WireRef } from "./names.js";
import type { SharedDownloads } from "./shared.js";
import { throttled } from "./progress.js";
import { verifySignatures, writeSignatureRecords, type SignatureRecord, type VerifyPolicy } from "./signatures.js";

export interface TransferOptions {
  /** plain HTTP */
  insecure?: boolean;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PullOptions extends TransferOptions {
  /** refuse the image unless a signature verifies under this policy (checked before any blob is fetched) */
  verify?: VerifyPolicy;
}

export interface PullSettings {
  partSize?: number;
  parallelParts?: number;
  /** blobs fetched at once (default 4) */
  blobConcurrency?: number;
  stateEveryBytes?: number;
  /** turns a model image of another format (ModelPack, Docker Model Runner, KitOps) into an Ollama image */
  convert?: ForeignImageConverter;
}

/**
 * Conversion on pull (builder/formats gives the implementation; the client only fetches). `plan` says which
 * blobs to fetch for a manifest, or undefined to pull it as it is, and throws when it cannot be converted;
 * `convert` then writes the new image's blobs and returns its manifest, which is stored under the name.
 */
export interface ForeignImageConverter {
  plan(manifest: Manifest, name: string): { format: string; needed: Descriptor[] } | undefined;
  convert(store: LocalStore, manifest: Manifest, source: { digest: string; name: string }, opts: { signal?: AbortSignal; onProgress?: ProgressSink }): Promise<{ bytes: Buffer; summary: string[] }>;
}

export interface PullContext {
  http: RegistryHttp;
  shared: SharedDownloads;
  settings: PullSettings;
}

export interface PullResult {
  /** the name as stored */
  ref: ModelRef;
  /** manifest digest */
  digest: string;
  /** set when the image was converted: its format and manifest digest there, and what became of its layers */
  converted?: { format: string; sourceDigest: string; summary: string[] };
  /** the signatures that verified, with `verify` */
  signatures?: SignatureRecord[];
}

export function shortHex(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

/** Fetches a manifest's bytes; an index is resolved to its linux/amd64 (or first) image manifest. */
export async function fetchManifest(http: RegistryHttp, w: WireRef, reference: string, signal?: AbortSignal, depth = 0): Promise<{ bytes: Buffer; manifest: Manifest }> {
  let res;
  try {
    res = await http.send({ method: "GET", url: w.base + manifestPath(w.name, reference), headers: { accept: MANIFEST_ACCEPT }, signal });
  } catch (e) {
    if (httpStatusOf(e) === 404) {
      throw new RegistryError("MANIFEST_UNKNOWN", `${w.ref.host}/${w.name}:${reference} not found in the registry (${(e as Error).message})`, { cause: e });
    }
    throw e;
  }
  const bytes = await readAll(res.body, MAX_MANIFEST_BYTES);
  const claimed = header(res, "docker-content-digest");
  const parsed = claimed ? parseDigest(claimed) : null;
  if (parsed?.algorithm === "sha256" && digestOf(bytes) !== claimed) {
    throw new RegistryError("DIGEST_INVALID", `manifest of ${w.name}:${reference} does not match the digest the registry gave (${claimed})`);
  }
  if (reference.startsWith("sha256:") && digestOf(bytes) !== reference) {
    throw new RegistryError("DIGEST_INVALID", `manifest ${reference} of ${w.name} does not match its digest`);
  }
  const json = JSON.parse(bytes.toString("utf8")) as { mediaType?: string; manifests?: { digest: string; platform?: { os?: string; architecture?: string } }[] };
  const type = json.mediaType ?? header(res, "content-type")?.split(";")[0];
  if (type === MediaType.ociIndex || type === MediaType.dockerManifestList || (!json.mediaType && Array.isArray(json.manifests))) {
    if (depth > 0 || !json.manifests?.length) throw new RegistryError("MANIFEST_INVALID", `${w.name}:${reference} is an empty or nested index`);
    const pick = json.manifests.find((m) => m.platform?.os === "linux" && m.platform.architecture === "amd64") ?? json.manifests[0]!;
    return fetchManifest(http, w, pick.digest, signal, depth + 1);
  }
  return { bytes, manifest: parseManifest(bytes) };
}

export async function pull(ctx: PullContext, store: LocalStore, name: ModelRef | string, opts: PullOptions = {}): Promise<PullResult> {
  const w = wireRef(name, opts);
  const emit = opts.onProgress ?? (() => {});
  emit({ status: "pulling manifest" });
  const { bytes, manifest } = await fetchManifest(ctx.http, w, w.tag, opts.signal);
  let signatures: SignatureRecord[] | undefined;
  if (opts.verify) {
    emit({ status: "verifying signature" });
    signatures = await verifySignatures(ctx.http, w, digestOf(bytes), opts.verify, opts.signal);
  }
  const source = `${w.ref.host}/${w.name}${w.tag.startsWith("sha256:") ? "@" : ":"}${w.tag}`;
  const plan = ctx.settings.convert?.plan(manifest, source);
  // layers in the order they appear (as Ollama shows them), then the config; each digest once
  const uniq: Descriptor[] = [];
  for (const d of plan?.needed ?? [...manifest.layers, manifest.config]) if (!uniq.some((b) => b.digest === d.digest)) uniq.push(d);
  for (const d of uniq) {
    if (parseDigest(d.digest)?.algorithm !== "sha256") throw new RegistryError("UNSUPPORTED", `blob ${d.digest}: the local store keeps sha256 blobs only`);
  }
  /** blobs this pull brought into the store (a conversion removes those it did not keep) */
  const fetched = new Set<string>();
  await runParallel(uniq, ctx.settings.blobConcurrency ?? 4, async (d) => {
    const status = `pulling ${shortHex(d.digest)}`;
    const report = throttled((completed) => emit({ status, digest: d.digest, total: d.size, completed }));
    if (await store.hasBlob(d.digest)) {
      await clearLeftovers(store, d.digest);
      report(d.size, true);
      return;
    }
    const key = store.partialPath(d.digest);
    await ctx.shared.join(
      key,
      (signal, progress) =>
        downloadBlob({
          http: ctx.http, store, url: w.base + blobPath(w.name, d.digest), digest: d.digest, size: d.size,
          partSize: ctx.settings.partSize, parallel: ctx.settings.parallelParts, stateEveryBytes: ctx.settings.stateEveryBytes,
          signal, onProgress: progress,
        }),
      (c) => report(c, c >= d.size),
      opts.signal,
    );
    if (!(await store.hasBlob(d.digest))) throw new MfError("INTERNAL", `blob ${d.digest} missing after its download`);
    fetched.add(d.digest);
    report(d.size, true);
  });
  emit({ status: "verifying sha256 digest" });
  if (plan && ctx.settings.convert) {
    const sourceDigest = digestOf(bytes);
    emit({ status: `converting ${plan.format} image ${shortHex(sourceDigest)} to an Ollama image` });
    const out = await ctx.settings.convert.convert(store, manifest, { digest: sourceDigest, name: source }, { signal: opts.signal, onProgress: emit });
    emit({ status: "writing manifest" });
    // what verified is the source image; its record goes with the image the store keeps
    if (signatures) await writeSignatureRecords(store, digestOf(out.bytes), signatures);
    const written = await store.writeManifest(w.ref, out.bytes);
    // what this pull fetched only to be converted (a tar layer, the source config) is not kept; a blob the
    // store had before is left alone (it may be another build's or pull's, not yet referenced)
    const referenced = await store.referencedBlobs();
    for (const d of fetched) if (!referenced.has(d)) await store.removeBlob(d);
    emit({ status: "success" });
    return { ref: written.ref, digest: written.digest, converted: { format: plan.format, sourceDigest, summary: out.summary }, ...(signatures ? { signatures } : {}) };
  }
  emit({ status: "writing manifest" });
  if (signatures) await writeSignatureRecords(store, digestOf(bytes), signatures);
  const written = await store.writeManifest(w.ref, bytes);
  emit({ status: "success" });
  return { ref: written.ref, digest: written.digest, ...(signatures ? { signatures } : {}) };
}
