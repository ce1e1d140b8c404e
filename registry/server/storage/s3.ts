/**
 * The S3 storage driver: every driver path is the key `<prefix>/<path>` in one bucket, so the bucket
 * shows the tree of storage/layout.ts; the driver's own objects live under `<prefix>/.mf/` (a first
 * segment no driver path may use). Any number of registry replicas may share the bucket and prefix.
 *
 * What a key holds is told by its metadata (`x-amz-meta-mf-kind`, one HEAD; s3-objects.ts):
 * - a plain object (putContent; a blob that never reached 5 MiB);
 * - a write state (writeAt in progress: multipart upload, parts, staged objects; s3-write.ts);
 * - a link: `{target, size}` naming the completed multipart upload `<prefix>/.mf/data/<id>`.
 *
 * `move` of a write (the upload's closing PUT) completes the multipart upload where it is and writes a
 * link at the target: the digest → object link strategy. Chosen over CopyObject/UploadPartCopy because
 * its cost does not grow with the blob: S3 has no rename, a server-side copy of a multi-GiB blob takes
 * seconds to minutes inside the client's PUT (CopyObject stops at 5 GiB; beyond, a multipart
 * UploadPartCopy), and it briefly stores the blob twice. A link costs one small PUT at the end, and
 * one HEAD more when a blob is read (which HEAD the registry does anyway for the size). Reads,
 * pre-signed URLs, touch and delete follow links; deleting a link deletes its target.
 *
 * Modification times are `x-amz-meta-mf-mtime` (ms; S3's Last-Modified has whole seconds), and `touch`
 * rewrites them with a server-side copy of the object onto itself, only if it is unchanged (If-Match),
 * so a touch never brings back a deleted blob nor revives a replaced link.
 */
import type { Readable } from "node:stream";
import { MfError, StoreError } from "../../../core/errors.js";
import { checkStoragePath, type ByteSpan, type StatInfo, type StorageDriver, type WriteAtOptions } from "./driver.js";
import { META_KIND, META_MTIME, META_SIZE, META_TARGET, S3Objects, isMissing, isPreconditionFailed, type S3Connection } from "./s3-objects.js";
import { discardWrite, loadWrite, markLinked, readStagedWrite, sealWrite, writeAt, type WriteContext, type WriteState } from "./s3-write.js";

/** S3's smallest part but the last: the chunk size clients are asked for (`OCI-Chunk-Min-Length`). */
export const S3_MIN_PART = 5 << 20;
const INTERNAL = ".mf";

export interface S3DriverOptions extends S3Connection {
  /** key prefix inside the bucket (no leading or trailing `/`); "" for the whole bucket */
  prefix?: string;
  /** part size cut within one request (default 16 MiB; at least 5 MiB) */
  partSize?: number;
  clock?: () => number;
}

/** `s3://bucket/some/prefix` → bucket and prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new MfError("BAD_REQUEST", `invalid S3 location "${url}" (expected s3://bucket/prefix)`);
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (prefix) checkStoragePath(prefix);
  return { bucket: m[1]!, prefix };
}

interface Owned {
  target?: string;
  write?: WriteState;
}

export class S3Driver implements StorageDriver {
  readonly sealedWrites = true;
  readonly minChunkBytes = S3_MIN_PART;
  readonly bucket: string;
  readonly prefix: string;
  private readonly objects: S3Objects;
  private readonly w: WriteContext;
  private readonly clock: () => number;

  constructor(options: S3DriverOptions) {
    this.objects = new S3Objects(options);
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    if (this.prefix) checkStoragePath(this.prefix);
    this.clock = options.clock ?? Date.now;
    this.w = {
      objects: this.objects,
      internal: this.key(INTERNAL) + "/",
      minPart: S3_MIN_PART,
      partSize: Math.max(S3_MIN_PART, options.partSize ?? 16 << 20),
      clock: this.clock,
    };
  }

  /** Closes the connections to S3. */
  close(): void {
    this.objects.close();
  }

  private key(path: string): string {
    return this.prefix ? `${this.prefix}/${path}` : path;
  }

  private keyOf(path: string): string {
    const parts = checkStoragePath(path);
    if (parts[0] === INTERNAL) throw new Error(`storage: invalid path "${path}" (${INTERNAL}/ is the S3 driver's own)`);
    return this.key(path);
  }

  private mtime(): Record<string, string> {
    return { [META_MTIME]: String(this.clock()) };
  }

  async stat(path: string): Promise<StatInfo | null> {
    const key = this.keyOf(path);
    const info = await this.objects.head(key);
    if (info) return { size: info.size, modifiedMs: info.modifiedMs, isDir: false };
    const child = await this.objects.anyUnder(`${key}/`);
    return child ? { size: 0, modifiedMs: child.modifiedMs, isDir: true } : null;
  }

  async read(path: string, span?: ByteSpan): Promise<Readable> {
    const key = this.keyOf(path);
    const info = await this.objects.head(key);
    if (info?.kind === "write") {
      const st = await loadWrite(this.w, key);
      if (st) return readStagedWrite(this.w, key, st, span);
    }
    const r = info ? await this.objects.get(info.kind === "link" ? info.target! : key, span) : null;
    if (!r) throw new StoreError("BLOB_UNKNOWN", `no object at ${path}`);
    return r.body;
  }

  async getContent(path: string, maxBytes = 64 << 20): Promise<Buffer | null> {
    const key = this.keyOf(path);
    const r = await this.objects.getBuffer(key);
    if (!r) return null;
    if (r.info.size > maxBytes) throw new MfError("INTERNAL", `object ${path} is larger than ${maxBytes} bytes`);
    if (r.info.kind === "plain") return r.data;
    if (r.info.kind === "link") return (await this.objects.getBuffer(r.info.target!))?.data ?? null;
    const chunks: Buffer[] = [];
    for await (const c of readStagedWrite(this.w, key, JSON.parse(r.data.toString("utf8")) as WriteState)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    await this.objects.put(this.keyOf(path), data, this.mtime());
  }

  async putContentIfAbsent(path: string, data: Uint8Array): Promise<boolean> {
    try {
      await this.objects.put(this.keyOf(path), data, this.mtime(), { ifAbsent: true });
      return true;
    } catch (e) {
      if (isPreconditionFailed(e)) return false;
      throw e;
    }
  }

  async writeAt(path: string, offset: number, source: AsyncIterable<Uint8Array>, options?: WriteAtOptions): Promise<number> {
    const key = this.keyOf(path);
    return writeAt(this.w, key, await this.objects.head(key), offset, source, options);
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.keyOf(from);
    const dst = this.keyOf(to);
    const info = await this.objects.head(src);
    if (!info) throw new StoreError("BLOB_UNKNOWN", `no object at ${from}`);
    const replaced = await this.owned(dst);
    if (info.kind === "write") {
      const st = await loadWrite(this.w, src);
      if (!st) throw new StoreError("BLOB_UNKNOWN", `no object at ${from}`);
      const sealed = await sealWrite(this.w, st);
      if ("bytes" in sealed) await this.objects.put(dst, sealed.bytes, this.mtime());
      else {
        // if we die between the link and deleting the write, whoever discards the write keeps the data
        await markLinked(this.w, src, st, dst);
        await this.putLink(dst, sealed.dataKey, st.size);
      }
      await this.objects.deleteMany([src]);
      await discardWrite(this.w, st, true);
    } else {
      await this.objects.copy(src, dst, { meta: { ...info.meta, ...this.mtime() } });
      await this.objects.deleteMany([src]);
    }
    if (replaced) await this.release(replaced, info.target);
  }

  private async putLink(key: string, target: string, size: number): Promise<void> {
    await this.objects.put(key, Buffer.from(JSON.stringify({ target, size })), {
      [META_KIND]: "link",
      [META_TARGET]: target,
      [META_SIZE]: String(size),
      ...this.mtime(),
    });
  }

  /** What the object at `key` owns besides itself: a link's target, a write's parts; null for a plain object or none. */
  private async owned(key: string): Promise<Owned | null> {
    const info = await this.objects.head(key);
    if (info?.kind === "link" && info.target) return { target: info.target };
    if (info?.kind === "write") {
      const write = await loadWrite(this.w, key);
      return write ? { write } : null;
    }
    return null;
  }

  /** Deletes what a replaced or deleted object owned, except `keep`. */
  private async release(owned: Owned, keep?: string): Promise<void> {
    if (owned.target && owned.target !== keep) await this.objects.deleteMany([owned.target]);
    if (owned.write) await discardWrite(this.w, owned.write, false);
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.objects.listLevel(`${this.keyOf(prefix)}/`)).sort();
  }

  async delete(path: string): Promise<void> {
    const key = this.keyOf(path);
    const keys = [key, ...(await this.objects.listAll(`${key}/`))];
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(keys.slice(i, i + 16).map((k) => this.deleteKey(k)));
    }
  }

  private async deleteKey(key: string): Promise<void> {
    const owned = await this.owned(key);
    await this.objects.deleteMany([key]);
    if (owned) await this.release(owned);
  }

  async touch(path: string): Promise<void> {
    const key = this.keyOf(path);
    for (let attempt = 0; ; attempt++) {
      const info = await this.objects.head(key);
      if (!info) throw new StoreError("BLOB_UNKNOWN", `no object at ${path}`);
      try {
        await this.objects.copy(key, key, { meta: { ...info.meta, ...this.mtime() }, ifMatch: info.etag });
        return;
      } catch (e) {
        // changed between HEAD and copy (replaced; or deleted, which the next HEAD tells)
        if (!(isPreconditionFailed(e) || isMissing(e)) || attempt >= 3) throw e;
      }
    }
  }

  /** A pre-signed GET URL of the object's bytes, valid `ttlMs`; null when there is no single object (a write in progress). */
  async signedReadUrl(path: string, ttlMs: number): Promise<string | null> {
    const key = this.keyOf(path);
    const info = await this.objects.head(key);
    if (!info) throw new StoreError("BLOB_UNKNOWN", `no object at ${path}`);
    if (info.kind === "write") return null;
    return this.objects.presignGet(info.kind === "link" ? info.target! : key, Math.max(1, Math.ceil(ttlMs / 1000)));
  }
}
