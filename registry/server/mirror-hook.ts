/**
 * What the registry asks of a pull-through mirror (registry/server/mirror/, wired in by the CLI): the
 * server itself knows nothing of upstreams. Handlers call it only for names it covers.
 */
import type { Readable } from "node:stream";
import type { ParsedDigest } from "../../core/digest.js";
import type { ByteSpan } from "./storage/driver.js";
import type { ManifestRef } from "./validate.js";

/** A blob being fetched from upstream: its size, and readers of any span that wait for the bytes. */
export interface ArrivingBlob {
  size: number;
  /** a stream of `span` (default: all) that waits for bytes still arriving; errors if the fetch fails or the digest does not match */
  read(span?: ByteSpan): Readable;
}

export interface MirrorHook {
  /** true when `name` is under a mirrored namespace */
  covers(name: string): boolean;
  /** Throws (DENIED) for a push into a mirrored namespace. */
  refuseWrite(name: string): void;
  /** Before a manifest GET/HEAD of a covered name: fetches it (or re-checks a tag past its TTL) into storage. */
  manifest(name: string, ref: ManifestRef): Promise<void>;
  /**
   * A blob GET/HEAD of a covered name the repository lacks: null once it is stored and linked (serve it
   * locally), else the fetch in progress (one per digest, however many ask).
   */
  blob(name: string, digest: ParsedDigest): Promise<ArrivingBlob | null>;
  /** The fetch in progress for a digest, if any (the signed blob URL serves ranges from it). */
  arriving(digest: ParsedDigest): ArrivingBlob | null;
  close(): Promise<void>;
}
