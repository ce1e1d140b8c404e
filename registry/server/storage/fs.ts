/** The filesystem storage driver: objects are files under a root directory (tree: storage/layout.ts). */
import { createReadStream } from "node:fs";
import { writeAllv } from "../../../core/fileio.js";
import { link, mkdir, open, readdir, rename, rm, stat, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { MfError, StoreError } from "../../../core/errors.js";
import { checkStoragePath, type ByteSpan, type StatInfo, type StorageDriver, type WriteAtOptions } from "./driver.js";

/** Batches of this many bytes go to disk in one writev. */
const WRITE_BATCH = 1 << 20;
const TMP_MARK = ".tmp-";

export interface FsDriverOptions {
  root: string;
}

export class FsDriver implements StorageDriver {
  readonly root: string;

  constructor(options: FsDriverOptions) {
    this.root = options.root;
  }

  private abs(path: string): string {
    return join(this.root, ...checkStoragePath(path));
  }

  async stat(path: string): Promise<StatInfo | null> {
    try {
      const s = await stat(this.abs(path));
      return { size: s.isDirectory() ? 0 : s.size, modifiedMs: s.mtimeMs, isDir: s.isDirectory() };
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async read(path: string, span?: ByteSpan): Promise<Readable> {
    const file = this.abs(path);
    let fh: FileHandle;
    try {
      fh = await open(file, "r");
    } catch (e) {
      if (isMissing(e)) throw new StoreError("BLOB_UNKNOWN", `no object at ${path}`);
      throw e;
    }
    // The stream owns the handle (autoClose), so a deleted blob keeps serving the bytes already opened.
    return createReadStream("", { fd: fh, start: span?.start, end: span?.end, highWaterMark: 256 << 10 });
  }

  async getContent(path: string, maxBytes = 64 << 20): Promise<Buffer | null> {
    let fh: FileHandle;
    try {
      fh = await open(this.abs(path), "r");
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) throw new MfError("INTERNAL", `object ${path} is larger than ${maxBytes} bytes`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async putContent(path: string, data: Uint8Array): Promise<void> {
    const file = this.abs(path);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}${TMP_MARK}${randomBytes(6).toString("hex")}`;
    try {
      await writeFile(tmp, data);
      await rename(tmp, file);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async putContentIfAbsent(path: string, data: Uint8Array): Promise<boolean> {
    const file = this.abs(path);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}${TMP_MARK}${randomBytes(6).toString("hex")}`;
    try {
      await writeFile(tmp, data);
      // link() fails when the name exists: an exclusive create that never shows a half-written file
      await link(tmp, file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async writeAt(path: string, offset: number, source: AsyncIterable<Uint8Array>, options: WriteAtOptions = {}): Promise<number> {
    const file = this.abs(path);
    let fh: FileHandle;
    try {
      fh = await open(file, "r+");
    } catch (e) {
      if (!isMissing(e) || offset !== 0) throw e;
      await mkdir(dirname(file), { recursive: true });
      fh = await open(file, "w+");
    }
    // Double buffering: one batch is being written while the next one fills from the source.
    let nextPosition = offset;
    let reported = 0;
    let inflight: Promise<void> | undefined;
    let failure: unknown;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const startWrite = () => {
      const chunks = batch;
      const position = nextPosition;
      nextPosition += batchBytes;
      batch = [];
      batchBytes = 0;
      inflight = writeAllv(fh, chunks, position).then(
        () => {
          for (const c of chunks) {
            reported += c.length;
            options.onWritten?.(c);
          }
          options.onResumePoint?.();
        },
        (e: unknown) => {
          failure = e;
        },
      );
    };
    const settle = async () => {
      if (inflight) await inflight;
      inflight = undefined;
      if (failure !== undefined) throw failure;
    };
    try {
      const { size } = await fh.stat();
      if (size < offset) throw new StoreError("STORE_CORRUPT", `${path} holds ${size} bytes, fewer than offset ${offset}`);
      if (size > offset) await fh.truncate(offset);
      for await (const chunk of source) {
        options.signal?.throwIfAborted();
        if (chunk.length === 0) continue;
        batch.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH) {
          await settle();
          startWrite();
        }
      }
      await settle();
      if (batchBytes > 0) {
        startWrite();
        await settle();
      }
      return reported;
    } finally {
      // Whatever happened, the write in flight finishes (and is reported) before the handle closes.
      if (inflight) await inflight;
      await fh.close();
    }
  }

  async move(from: string, to: string): Promise<void> {
    const target = this.abs(to);
    await mkdir(dirname(target), { recursive: true });
    try {
      await rename(this.abs(from), target);
    } catch (e) {
      if (isMissing(e)) throw new StoreError("BLOB_UNKNOWN", `no object at ${from}`);
      throw e;
    }
  }

  async list(prefix: string): Promise<string[]> {
    try {
      const names = await readdir(this.abs(prefix));
      return names.filter((n) => !n.includes(TMP_MARK)).sort();
    } catch (e) {
      if (isMissing(e) || (e as NodeJS.ErrnoException).code === "ENOTDIR") return [];
      throw e;
    }
  }

  async delete(path: string): Promise<void> {
    await rm(this.abs(path), { recursive: true, force: true });
  }

  async touch(path: string): Promise<void> {
    const now = new Date();
    try {
      await utimes(this.abs(path), now, now);
    } catch (e) {
      if (isMissing(e)) throw new StoreError("BLOB_UNKNOWN", `no object at ${path}`);
      throw e;
    }
  }
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === "ENOENT";
}
