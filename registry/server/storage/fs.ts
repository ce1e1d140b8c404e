/**
 * The filesystem storage driver: objects are files under a root directory (tree: storage/layout.ts).
 *
 * - Small objects are written to a temporary file under `<root>/.mf/tmp/` and renamed into place, so a
 *   reader never sees half of one. That directory is the driver's own: no driver path may start with
 *   `.mf`, and no repository, tag or digest name can land there (temporary names are never made beside
 *   an object, where they could be mistaken for one, or hide one that looks like them).
 * - Directories behave like S3's implied prefixes: deleting or moving away the last object under one
 *   removes it (and its emptied parents), and whatever creates an object makes its directory again,
 *   retrying when a concurrent delete removed it in between.
 */
import { createReadStream } from "node:fs";
import { writeAllv } from "../../../core/fileio.js";
import { link, mkdir, open, readdir, rename, rm, rmdir, stat, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { MfError, StoreError } from "../../../core/errors.js";
import { checkStoragePath, type ByteSpan, type StatInfo, type StorageDriver, type WriteAtOptions } from "./driver.js";

/** Batches of this many bytes go to disk in one writev. */
const WRITE_BATCH = 1 << 20;
/** The driver's own directory under the root (a first segment no driver path may use). */
export const FS_INTERNAL = ".mf";
const TMP_DIR = "tmp";
/** How often a create is retried when a concurrent delete removes its (emptied) directory in between. */
const CREATE_TRIES = 5;

export interface FsDriverOptions {
  root: string;
}

export class FsDriver implements StorageDriver {
  readonly root: string;

  constructor(options: FsDriverOptions) {
    this.root = options.root;
  }

  private abs(path: string): string {
    const parts = checkStoragePath(path);
    if (parts[0] === FS_INTERNAL) throw new Error(`storage: invalid path "${path}" (${FS_INTERNAL}/ is the filesystem driver's own)`);
    return join(this.root, ...parts);
  }

  /** Writes `data` to a new temporary file (in the driver's own directory) and returns its path. */
  private async writeTemp(data: Uint8Array): Promise<string> {
    const tmp = join(this.root, FS_INTERNAL, TMP_DIR, randomBytes(12).toString("hex"));
    await this.inDir(tmp, () => writeFile(tmp, data, { flag: "wx" }));
    return tmp;
  }

  /**
   * Runs `create`, which makes an entry in `file`'s directory, after making that directory; again when
   * it fails with ENOENT (a concurrent delete removed the emptied directory in between).
   */
  private async inDir<T>(file: string, create: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await mkdir(dirname(file), { recursive: true });
      try {
        return await create();
      } catch (e) {
        if (!isMissing(e) || attempt >= CREATE_TRIES) throw e;
      }
    }
  }

  /** Removes the directories above `path` that are now empty, up to (not including) the root. */
  private async prune(path: string): Promise<void> {
    const parts = checkStoragePath(path);
    for (let n = parts.length - 1; n > 0; n--) {
      try {
        await rmdir(join(this.root, ...parts.slice(0, n)));
      } catch (e) {
        // not empty (or something else there): everything above it stays too
        if (!isMissing(e)) return;
      }
    }
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
    const tmp = await this.writeTemp(data);
    try {
      await this.inDir(file, () => rename(tmp, file));
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async putContentIfAbsent(path: string, data: Uint8Array): Promise<boolean> {
    const file = this.abs(path);
    const tmp = await this.writeTemp(data);
    try {
      // link() fails when the name exists: an exclusive create that never shows a half-written file
      await this.inDir(file, () => link(tmp, file));
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
      fh = await this.inDir(file, () => open(file, "w+"));
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
    const source = this.abs(from);
    const target = this.abs(to);
    try {
      await this.inDir(target, async () => {
        try {
          await rename(source, target);
        } catch (e) {
          if (isMissing(e) && !(await this.stat(from))) throw new StoreError("BLOB_UNKNOWN", `no object at ${from}`);
          throw e;
        }
      });
    } catch (e) {
      if (isMissing(e)) throw new StoreError("BLOB_UNKNOWN", `no object at ${from}`);
      throw e;
    }
    await this.prune(from);
  }

  async list(prefix: string): Promise<string[]> {
    try {
      return (await readdir(this.abs(prefix))).sort();
    } catch (e) {
      if (isMissing(e) || (e as NodeJS.ErrnoException).code === "ENOTDIR") return [];
      throw e;
    }
  }

  async delete(path: string): Promise<void> {
    await rm(this.abs(path), { recursive: true, force: true });
    await this.prune(path);
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

  /** Removes temporary files (a crash's leftovers) last modified before `beforeMs`; returns how many. */
  async sweepTemporary(beforeMs: number): Promise<number> {
    const dir = join(this.root, FS_INTERNAL, TMP_DIR);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (isMissing(e)) return 0;
      throw e;
    }
    let removed = 0;
    for (const name of names) {
      const info = await stat(join(dir, name)).catch(() => null);
      if (info && info.mtimeMs < beforeMs) {
        await rm(join(dir, name), { recursive: true, force: true });
        removed++;
      }
    }
    return removed;
  }
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === "ENOENT";
}
