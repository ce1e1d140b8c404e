/**
 * The registry's storage driver: a small interface over a flat key space of `/`-separated paths, shaped
 * so that an object store (S3) can implement it as well as a filesystem:
 *
 * - no append-in-place is assumed beyond `writeAt`, which the S3 driver maps to multipart parts (the
 *   offset must equal the committed size, or be smaller, which discards the parts past it; on S3 only
 *   back to a *resume point* (`onResumePoint`: the end of a part or of an earlier writeAt) that no later
 *   writeAt started beyond, which is all an upload session that persists its offset at resume points
 *   ever asks: storage/s3-write.ts);
 * - `move` is the only way a blob becomes visible (rename on a filesystem; on S3, completing the
 *   multipart upload and linking it at the target: storage/s3.ts);
 * - directories are implied by paths: `list` returns the next path segment under a prefix, `delete`
 *   removes a whole prefix, and a prefix with nothing left under it is gone (stat null, not listed);
 * - `list` returns every name that is there: a driver's temporary objects live where no path built by
 *   layout.ts can land (fs: `.mf/tmp/`), never beside an object under a name that might be a real one.
 *
 * Paths given to a driver are always built by registry/server/storage/layout.ts from validated names,
 * tags and digests; a driver still refuses `..`, empty and absolute segments.
 */
import type { Readable } from "node:stream";

export interface StatInfo {
  /** bytes; 0 for a prefix ("directory") */
  size: number;
  /** last modification (or `touch`) time, ms since the epoch */
  modifiedMs: number;
  /** true when the path is a prefix with children rather than an object */
  isDir: boolean;
}

export interface ByteSpan {
  /** first byte, inclusive */
  start: number;
  /** last byte, inclusive */
  end: number;
}

export interface WriteAtOptions {
  /** called, in order, with each chunk once it is durably handed to storage (the caller hashes here) */
  onWritten?: (chunk: Buffer) => void;
  /**
   * called after each batch of `onWritten` chunks: everything reported so far is stored, and a later
   * writeAt may start exactly there (on S3 a part boundary). The caller may persist that offset now.
   */
  onResumePoint?: () => void;
  signal?: AbortSignal;
}

export interface StorageDriver {
  /** Size and time of an object or prefix; null when nothing is there. */
  stat(path: string): Promise<StatInfo | null>;
  /** A stream of the object's bytes, or of `span` of them. Rejects with BLOB_UNKNOWN when absent. */
  read(path: string, span?: ByteSpan): Promise<Readable>;
  /** A small object read whole, or null when absent. Refuses objects over `maxBytes`. */
  getContent(path: string, maxBytes?: number): Promise<Buffer | null>;
  /** Writes a small object atomically (readers see the old or the new bytes, never a mix). */
  putContent(path: string, data: Uint8Array): Promise<void>;
  /**
   * Writes a small object only when nothing is at `path`, as one atomic step against every writer of the
   * same storage (other replicas included); false when something was there. Optional: callers fall back
   * to stat + putContent.
   */
  putContentIfAbsent?(path: string, data: Uint8Array): Promise<boolean>;
  /**
   * Writes `source` into the object starting at `offset`, first discarding everything past `offset`
   * (creating the object when absent and offset is 0). Resolves with the bytes written. On a failure
   * the bytes already reported through `onWritten` stay stored; the caller decides what counts.
   */
  writeAt(path: string, offset: number, source: AsyncIterable<Uint8Array>, options?: WriteAtOptions): Promise<number>;
  /** Moves an object (replacing `to` when present). */
  move(from: string, to: string): Promise<void>;
  /** The sorted child names directly under a prefix; [] when none. */
  list(prefix: string): Promise<string[]>;
  /** Removes an object or a whole prefix; no error when absent. */
  delete(path: string): Promise<void>;
  /** Sets an object's modification time to now (GC's "recently used" mark). */
  touch(path: string): Promise<void>;
  /**
   * True when bytes handed to `writeAt` cannot be read back before the object is moved (S3: parts of an
   * open multipart upload). Upload sessions then keep a resumable hash state beside their offset instead
   * of re-reading the stored prefix.
   */
  readonly sealedWrites?: boolean;
  /** The smallest chunk a client should send per PATCH (S3: the 5 MiB part minimum), advertised as `OCI-Chunk-Min-Length`. */
  readonly minChunkBytes?: number;
  /** A URL from which clients read the object directly for `ttlMs` (S3: pre-signed GET), or null when there is none. */
  signedReadUrl?(path: string, ttlMs: number): Promise<string | null>;
  /** Removes the driver's own temporary objects (a crash's leftovers) last modified before `beforeMs`; returns how many. */
  sweepTemporary?(beforeMs: number): Promise<number>;
}

/** Shared check for driver paths: relative, no empty, `.` or `..` segments. */
export function checkStoragePath(path: string): string[] {
  const parts = path.split("/");
  if (path === "" || path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".." || p.includes("\0"))) {
    throw new Error(`storage: invalid path "${path}"`);
  }
  return parts;
}
