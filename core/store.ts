/**
 * The local store: Ollama's layout (compat.md §2), so an Ollama models directory works as a store.
 *
 *   <root>/
 *     manifests/<host>/<namespace>/<model>/<tag>   manifest bytes, exactly as built or pulled
 *     blobs/sha256-<64 hex>                         content-addressed, written once
 *     blobs/.mf-tmp-<random>                        a blob or manifest being written (never read as a blob)
 *     blobs/sha256-<hex>-mf-partial[.json]          a resumable download and its state (registry client)
 *
 * Blobs are streamed through SHA-256 into a temp file and renamed into place only after the digest is
 * verified; manifests are written to a temp file and renamed. Renames are atomic, so concurrent writers
 * of the same blob or tag never leave a torn file: the last rename wins with complete bytes. A crash
 * leaves only temp files, which `prune` removes after a grace period.
 */
import { constants as fsc, createReadStream, createWriteStream } from "node:fs";
import * as fs from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, relative, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { Transform, type Readable } from "node:stream";
import { StoreError, MfError } from "./errors.js";
import { assertDigest, createHasher, digestFile, digestOf } from "./digest.js";
import { parseManifest, type Manifest, MAX_MANIFEST_BYTES } from "./manifest.js";
import { type ModelRef, parseRef, refKey, refPathParts, tryParseRef } from "./reference.js";

export const TEMP_PREFIX = ".mf-tmp-";
export const PARTIAL_SUFFIX = "-mf-partial";
export const TEMP_GRACE_MS = 60 * 60 * 1000;
export const PARTIAL_GRACE_MS = 24 * 60 * 60 * 1000;

export interface StoredModel {
  /** the reference with the spelling it was first stored under */
  ref: ModelRef;
  /** manifest digest `sha256:<hex>` */
  digest: string;
  /** manifest bytes */
  bytes: Buffer;
  manifest: Manifest;
  modified: Date;
  /** sum of config and layer sizes */
  size: number;
}

export interface ProgressFn {
  (completed: number, total: number): void;
}

export interface ImportOptions {
  /** hard-link instead of copying (only on explicit request: an in-place edit of the source changes the blob) */
  link?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export interface PruneResult {
  removedTemp: string[];
  removedBlobs: string[];
  freedBytes: number;
}

export interface StoreOptions {
  /** injected clock, for tests of grace periods */
  now?: () => number;
}

export class LocalStore {
  readonly root: string;
  private readonly now: () => number;

  constructor(root: string, opts: StoreOptions = {}) {
    this.root = root;
    this.now = opts.now ?? Date.now;
  }

  get blobsDir(): string {
    return join(this.root, "blobs");
  }

  get manifestsDir(): string {
    return join(this.root, "manifests");
  }

  /** Path of a blob; the digest is validated before it touches the path. */
  blobPath(digest: string): string {
    const d = assertDigest(digest);
    if (d.algorithm !== "sha256") throw new StoreError("DIGEST_INVALID", `the local store keeps sha256 blobs only, not ${d.algorithm}`);
    return join(this.blobsDir, `sha256-${d.hex}`);
  }

  /** Path of a resumable partial download of a blob (its state file is this path + `.json`). */
  partialPath(digest: string): string {
    return this.blobPath(digest) + PARTIAL_SUFFIX;
  }

  /** A fresh temp path inside blobs/ (same filesystem as the blobs, so renames are atomic). */
  async tempPath(): Promise<string> {
    await fs.mkdir(this.blobsDir, { recursive: true });
    return join(this.blobsDir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await this.blobSize(digest)) !== undefined;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    try {
      const st = await fs.stat(this.blobPath(digest));
      return st.isFile() ? st.size : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
  }

  /** Reads a small blob whole (configs, params, templates), capped at `max` bytes. */
  async readBlob(digest: string, max = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const p = this.blobPath(digest);
    let st;
    try {
      st = await fs.stat(p);
    } catch {
      throw new StoreError("BLOB_UNKNOWN", `blob ${digest} is not in the store`);
    }
    if (st.size > max) throw new StoreError("SIZE_INVALID", `blob ${digest} is ${st.size} bytes, more than ${max} read whole`);
    const buf = await fs.readFile(p);
    if (digestOf(buf) !== digest) throw new StoreError("STORE_CORRUPT", `blob ${digest} does not match its digest`);
    return buf;
  }

  openBlob(digest: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(digest), range ? { start: range.start, end: range.end } : {});
  }

  /**
   * Moves a finished temp file into place as `digest`. If the blob already exists the temp file is
   * dropped (the contents are the same by construction). Returns whether a new blob was created.
   */
  async commitTemp(tmp: string, digest: string): Promise<boolean> {
    const dst = this.blobPath(digest);
    if (await this.hasBlob(digest)) {
      await fs.rm(tmp, { force: true });
      return false;
    }
    await fs.rename(tmp, dst);
    return true;
  }

  /** Writes bytes as a blob (small layers). Returns the digest and whether it was new. */
  async writeBlob(data: Uint8Array | string): Promise<{ digest: string; size: number; created: boolean }> {
    const buf = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
    const digest = digestOf(buf);
    if (await this.hasBlob(digest)) return { digest, size: buf.length, created: false };
    const tmp = await this.tempPath();
    try {
      await fs.writeFile(tmp, buf, { flag: "wx" });
      return { digest, size: buf.length, created: await this.commitTemp(tmp, digest) };
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  /**
   * Streams a body into the store through SHA-256. With `expected`, a mismatch stores nothing and
   * throws DIGEST_INVALID.
   */
  async writeBlobStream(
    body: Readable | AsyncIterable<Uint8Array>,
    opts: { expected?: string; signal?: AbortSignal; onProgress?: (completed: number) => void } = {},
  ): Promise<{ digest: string; size: number; created: boolean }> {
    if (opts.expected) this.blobPath(opts.expected);
    const tmp = await this.tempPath();
    const hash = createHasher("sha256");
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        opts.onProgress?.(size);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, tap, createWriteStream(tmp, { flags: "wx" }), { signal: opts.signal });
      const digest = `sha256:${hash.digest("hex")}`;
      if (opts.expected && opts.expected !== digest) {
        throw new StoreError("DIGEST_INVALID", `digest mismatch: expected ${opts.expected}, got ${digest}`);
      }
      return { digest, size, created: await this.commitTemp(tmp, digest) };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /**
   * Imports a (possibly multi-GB) file in one read pass: the kernel copies it (a copy-on-write clone
   * where the filesystem supports one, else copy_file_range) while a hashing read of the same file runs
   * beside it and mostly hits the page cache. With `link`, the temp name is a hard link and only the hash
   * read happens.
   */
  async importFile(src: string, opts: ImportOptions = {}): Promise<{ digest: string; size: number; created: boolean }> {
    const st = await fs.stat(src);
    const tmp = await this.tempPath();
    try {
      const copy = opts.link
        ? fs.link(src, tmp).catch((e: NodeJS.ErrnoException) => {
          if (e.code === "EXDEV") {
            throw new StoreError("BUILD_FAILED", `--link needs ${src} on the same filesystem as the store (${this.root})`, { cause: e });
          }
          throw e;
        })
        : fs.copyFile(src, tmp, fsc.COPYFILE_FICLONE);
      const hashing = digestFile(src, "sha256", { signal: opts.signal, onProgress: opts.onProgress });
      const [, digest] = await Promise.all([copy, hashing]);
      // the copy and the hash read the source separately: an edit in between would store bytes that
      // do not match the digest, so a source whose size or modification time moved is refused
      const [after, srcAfter] = await Promise.all([fs.stat(tmp), fs.stat(src)]);
      if (after.size !== st.size || srcAfter.size !== st.size || srcAfter.mtimeMs !== st.mtimeMs) {
        throw new StoreError("BUILD_FAILED", `${src} changed while it was being imported; build again once it is complete`);
      }
      return { digest, size: st.size, created: await this.commitTemp(tmp, digest) };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Removes a blob (used to roll back a failed build's new blobs). */
  async removeBlob(digest: string): Promise<void> {
    await fs.rm(this.blobPath(digest), { force: true });
  }

  // ---- manifests ----

  private manifestPathFor(ref: ModelRef): string {
    const parts = refPathParts(ref);
    return join(this.manifestsDir, ...parts);
  }

  /** All stored references with the path of their manifest. */
  async listRefs(): Promise<{ ref: ModelRef; path: string }[]> {
    const out: { ref: ModelRef; path: string }[] = [];
    for (const p of await manifestFiles(this.manifestsDir)) {
      const parts = relative(this.manifestsDir, p).split(sep);
      if (parts.length !== 4 || parts[3]!.startsWith(TEMP_PREFIX)) continue;
      const [host, namespace, model, tag] = parts;
      const ref = tryParseRef(`${host}/${namespace}/${model}:${tag}`);
      if (ref) out.push({ ref, path: p });
    }
    return out;
  }

  /** The stored spelling of a reference, matched case-insensitively, or undefined. */
  async resolveRef(ref: ModelRef): Promise<{ ref: ModelRef; path: string } | undefined> {
    const exact = this.manifestPathFor(ref);
    try {
      if ((await fs.stat(exact)).isFile()) {
        const found = (await this.listRefs()).find((r) => r.path === exact);
        if (found) return found;
      }
    } catch {
      /* fall through to a case-insensitive search */
    }
    const key = refKey(ref);
    return (await this.listRefs()).find((r) => refKey(r.ref) === key);
  }

  async readModel(refOrName: ModelRef | string): Promise<StoredModel> {
    const ref = typeof refOrName === "string" ? parseRef(refOrName) : refOrName;
    const found = await this.resolveRef(ref);
    if (!found) throw new StoreError("MODEL_NOT_FOUND", `model "${typeof refOrName === "string" ? refOrName : refKey(ref)}" not found`);
    return this.readModelAt(found.ref, found.path);
  }

  async findModel(refOrName: ModelRef | string): Promise<StoredModel | undefined> {
    try {
      return await this.readModel(refOrName);
    } catch (e) {
      if (e instanceof MfError && e.code === "MODEL_NOT_FOUND") return undefined;
      throw e;
    }
  }

  private async readModelAt(ref: ModelRef, path: string): Promise<StoredModel> {
    const [bytes, st] = await Promise.all([fs.readFile(path), fs.stat(path)]);
    const manifest = parseManifest(bytes);
    const size = manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
    return { ref, digest: digestOf(bytes), bytes, manifest, modified: st.mtime, size };
  }

  async listModels(): Promise<StoredModel[]> {
    const refs = await this.listRefs();
    const out: StoredModel[] = [];
    for (const r of refs) {
      try {
        out.push(await this.readModelAt(r.ref, r.path));
      } catch {
        /* an unreadable manifest is skipped in listings */
      }
    }
    return out.sort((a, b) => b.modified.getTime() - a.modified.getTime());
  }

  /**
   * Writes manifest bytes for a reference, atomically. Every blob it references must be present. An
   * existing name with another spelling keeps its first spelling.
   */
  async writeManifest(ref: ModelRef, bytes: Uint8Array): Promise<{ ref: ModelRef; digest: string }> {
    const manifest = parseManifest(bytes);
    for (const d of [manifest.config, ...manifest.layers]) {
      if (!(await this.hasBlob(d.digest))) throw new StoreError("MANIFEST_BLOB_UNKNOWN", `manifest references blob ${d.digest}, which is not in the store`);
    }
    const existing = await this.resolveRef(ref);
    const target = existing?.path ?? this.manifestPathFor(ref);
    await fs.mkdir(dirname(target), { recursive: true });
    const tmp = join(dirname(target), `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
    try {
      await fs.writeFile(tmp, bytes, { flag: "wx" });
      await fs.rename(tmp, target);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return { ref: existing?.ref ?? ref, digest: digestOf(bytes) };
  }

  async copyModel(src: ModelRef | string, dst: ModelRef | string): Promise<{ ref: ModelRef; digest: string }> {
    const from = await this.readModel(src);
    const to = typeof dst === "string" ? parseRef(dst) : dst;
    return this.writeManifest(to, from.bytes);
  }

  /** Removes a model's manifest and every blob no other manifest references. */
  async deleteModel(refOrName: ModelRef | string): Promise<{ ref: ModelRef; removedBlobs: string[] }> {
    const model = await this.readModel(refOrName);
    const found = (await this.resolveRef(model.ref))!;
    await fs.rm(found.path, { force: true });
    await this.removeEmptyDirs(dirname(found.path));
    const referenced = await this.referencedBlobs();
    const removed: string[] = [];
    for (const d of [model.manifest.config, ...model.manifest.layers]) {
      if (!referenced.has(d.digest) && (await this.hasBlob(d.digest))) {
        await this.removeBlob(d.digest);
        removed.push(d.digest);
      }
    }
    return { ref: model.ref, removedBlobs: [...new Set(removed)] };
  }

  private async removeEmptyDirs(dir: string): Promise<void> {
    while (dir.startsWith(this.manifestsDir + sep)) {
      try {
        await fs.rmdir(dir);
      } catch {
        return;
      }
      dir = dirname(dir);
    }
  }

  /** Digests referenced by any manifest in the store. */
  async referencedBlobs(): Promise<Set<string>> {
    const set = new Set<string>();
    for (const r of await this.listRefs()) {
      try {
        const m = parseManifest(await fs.readFile(r.path));
        for (const d of [m.config, ...m.layers]) set.add(d.digest);
      } catch {
        /* unreadable manifests reference nothing */
      }
    }
    return set;
  }

  /**
   * Removes temp files older than the grace period (1 hour; resumable download state 24 hours) and
   * unreferenced blobs older than the grace period.
   */
  async prune(opts: { graceMs?: number; partialGraceMs?: number; dryRun?: boolean } = {}): Promise<PruneResult> {
    const grace = opts.graceMs ?? TEMP_GRACE_MS;
    const partialGrace = opts.partialGraceMs ?? PARTIAL_GRACE_MS;
    const now = this.now();
    const result: PruneResult = { removedTemp: [], removedBlobs: [], freedBytes: 0 };
    const referenced = await this.referencedBlobs();
    let entries: string[] = [];
    try {
      entries = await fs.readdir(this.blobsDir);
    } catch {
      return result;
    }
    for (const name of entries) {
      const p = join(this.blobsDir, name);
      let st;
      try {
        st = await fs.stat(p);
      } catch {
        continue;
      }
      const age = now - st.mtimeMs;
      let remove: "temp" | "blob" | undefined;
      if (name.startsWith(TEMP_PREFIX)) remove = age > grace ? "temp" : undefined;
      else if (name.includes(PARTIAL_SUFFIX)) remove = age > partialGrace ? "temp" : undefined;
      else if (/^sha256-[0-9a-f]{64}$/.test(name)) {
        const digest = `sha256:${name.slice(7)}`;
        remove = !referenced.has(digest) && age > grace ? "blob" : undefined;
      }
      if (!remove) continue;
      if (!opts.dryRun) await fs.rm(p, { force: true, recursive: true });
      result.freedBytes += st.size;
      if (remove === "temp") result.removedTemp.push(name);
      else result.removedBlobs.push(`sha256:${name.slice(7)}`);
    }
    // stale temp manifests
    for (const r of await this.listTempManifests()) {
      const st = await fs.stat(r).catch(() => undefined);
      if (st && now - st.mtimeMs > grace) {
        if (!opts.dryRun) await fs.rm(r, { force: true });
        result.removedTemp.push(relative(this.root, r));
      }
    }
    return result;
  }

  private async listTempManifests(): Promise<string[]> {
    return (await manifestFiles(this.manifestsDir)).filter((p) => basename(p).startsWith(TEMP_PREFIX));
  }
}

/** Every file below the manifests directory (at most 4 levels: host/namespace/model/tag). */
async function manifestFiles(dir: string, depth = 0): Promise<string[]> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && depth < 3) out.push(...(await manifestFiles(p, depth + 1)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
