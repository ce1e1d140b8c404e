/**
 * One blob arriving from upstream, fetched once however many clients ask (single-flight per digest).
 *
 * The upstream body is read once. Each chunk is written to a local spool file, hashed, and handed on to
 * the storage driver's `writeAt` into a staging object under `uploads/` (on S3: multipart parts); after
 * the last byte the digest is checked, and only a match is moved to `blobs/` (the one way a blob becomes
 * visible, as for pushes). A mismatch, a short or long body, or an upstream that fails midway deletes the
 * staging object and aborts every reader.
 *
 * Readers (a whole GET, or the 16 ranged GETs stock Ollama sends to the signed URL) read any span from the
 * spool file with positional reads, waiting for the bytes to reach their range. The last byte of the
 * blob is handed out only once the digest matched and the blob is stored, so no client ever receives a
 * whole blob that failed verification (its stream is cut instead), and the next request finds it stored. The spool file is removed when the fetch is over and its last
 * reader has finished.
 */
import { randomUUID } from "node:crypto";
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createHasher, type ParsedDigest } from "../../../core/digest.js";
import { RegistryError } from "../../../core/errors.js";
import type { ArrivingBlob } from "../mirror-hook.js";
import type { ByteSpan, StorageDriver } from "../storage/driver.js";
import * as L from "../storage/layout.js";
import { digestString } from "../validate.js";

const READ_CHUNK = 1 << 20;

export class Arrival implements ArrivingBlob {
  /** bytes in the spool file */
  private written = 0;
  private verified = false;
  private failure: Error | undefined;
  private over = false;
  private readers = 0;
  private waiters: (() => void)[] = [];
  private closed: Promise<void> | undefined;
  private stored = false;
  private storage: StorageDriver | undefined;

  private constructor(
    readonly digest: ParsedDigest,
    readonly size: number,
    private readonly spoolPath: string,
    private readonly fh: FileHandle,
  ) {}

  /** Opens the spool file for a blob of `size` bytes. */
  static async create(digest: ParsedDigest, size: number, spoolDir: string): Promise<Arrival> {
    const path = join(spoolDir, `${digest.algorithm}-${digest.hex}-${randomUUID()}`);
    return new Arrival(digest, size, path, await open(path, "w+"));
  }

  /**
   * Copies `body` to the spool and to storage, verifies it and moves it into place; `onStored` runs after
   * the move (links the repositories that asked). Rejects, with every reader cut, when anything fails.
   */
  async fill(body: AsyncIterable<Uint8Array>, storage: StorageDriver, onStored: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    this.storage = storage;
    const stageId = randomUUID();
    const stage = L.uploadDataPath(stageId);
    const hash = createHasher(this.digest.algorithm);
    const self = this;
    const text = digestString(this.digest);
    async function* tee(): AsyncGenerator<Buffer> {
      for await (const c of body) {
        signal?.throwIfAborted();
        const chunk = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        if (self.written + chunk.length > self.size) throw new RegistryError("UNKNOWN", `upstream sent more than the ${self.size} bytes it declared for ${text}`);
        for (let off = 0; off < chunk.length; ) {
          const { bytesWritten } = await self.fh.write(chunk, off, chunk.length - off, self.written + off);
          off += bytesWritten;
        }
        hash.update(chunk);
        self.written += chunk.length;
        self.wake();
        yield chunk;
      }
    }
    try {
      // a zero-byte blob has nothing to write: writeAt would leave no object to move
      if (this.size === 0) {
        for await (const _ of tee()) void _;
        await storage.putContent(stage, new Uint8Array(0));
      } else {
        await storage.writeAt(stage, 0, tee(), { signal });
      }
      if (this.written !== this.size) throw new RegistryError("UNKNOWN", `upstream sent ${this.written} of the ${this.size} bytes of ${text}`);
      const got = `${this.digest.algorithm}:${hash.digest("hex")}`;
      if (got !== text) throw new RegistryError("UNKNOWN", `upstream sent a blob that does not match its digest (expected ${text}, got ${got}); nothing was stored`);
      // the last byte goes out once the blob is stored: the next request finds it in storage
      try {
        await storage.move(stage, L.blobPath(this.digest));
        this.stored = true;
        await onStored();
      } finally {
        this.verified = true;
        this.wake();
      }
    } catch (e) {
      this.failure = e instanceof Error ? e : new Error(String(e));
      this.wake();
      throw e;
    } finally {
      await storage.delete(L.uploadDir(stageId)).catch(() => {});
      this.over = true;
      this.wake();
      void this.release(0);
    }
  }

  /** true once the fetch has failed: nothing more will come of it */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  read(span?: ByteSpan): Readable {
    // asked after the spool is gone (the fetch just ended): the stored blob, or the failure
    if (this.closed) {
      const { storage, failure } = this;
      const path = L.blobPath(this.digest);
      const stored = this.stored;
      return Readable.from((async function* () {
        if (!stored || !storage) throw failure ?? new RegistryError("BLOB_UNKNOWN", "the blob was not stored");
        yield* await storage.read(path, span);
      })());
    }
    const end = span ? span.end + 1 : this.size;
    let pos = span?.start ?? 0;
    this.readers++;
    let released = false;
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read: () => {
        this.next(pos, end, stream).then(
          (chunk) => {
            if (chunk) pos += chunk.length;
            stream.push(chunk);
          },
          (e: unknown) => stream.destroy(e as Error),
        );
      },
      destroy: (err, cb) => {
        if (!released) {
          released = true;
          void this.release(1);
        }
        cb(err);
      },
    });
    return stream;
  }

  /** The next chunk at `pos` (null at the end), once the bytes are there. */
  private async next(pos: number, end: number, stream: Readable): Promise<Buffer | null> {
    for (;;) {
      if (pos >= end) return null;
      if (this.failure) throw this.failure;
      // the last byte waits for the digest check
      const available = this.verified ? this.size : Math.min(this.written, this.size - 1);
      if (available > pos) {
        const n = Math.min(READ_CHUNK, available - pos, end - pos);
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await this.fh.read(buf, 0, n, pos);
        if (bytesRead <= 0) throw new RegistryError("UNKNOWN", `spool of ${digestString(this.digest)} ended early`);
        return buf.subarray(0, bytesRead);
      }
      if (this.over) throw this.failure ?? new RegistryError("UNKNOWN", `fetch of ${digestString(this.digest)} ended early`);
      await new Promise<void>((r) => this.waiters.push(r));
      if (stream.destroyed) return null;
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  /** One reader gone (n = 1) or the fetch over (n = 0): the spool file goes with the last of them. */
  private release(n: number): Promise<void> {
    this.readers -= n;
    if (!this.over || this.readers > 0) return Promise.resolve();
    this.closed ??= this.fh.close().catch(() => {}).then(() => rm(this.spoolPath, { force: true }));
    return this.closed;
  }
}
