/** Digests: parsing, validation and hashing (node's crypto, i.e. OpenSSL). */
import { createHash, type Hash } from "node:crypto";
import { open } from "node:fs/promises";
import { MfError } from "./errors.js";

export type DigestAlgorithm = "sha256" | "sha512";

const HEX_LEN: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^(sha256|sha512):([0-9a-f]+)$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

/** Parses `sha256:<hex>` (or sha512). Returns null for anything else, including uppercase hex. */
export function parseDigest(s: string): ParsedDigest | null {
  const m = DIGEST_RE.exec(s);
  if (!m) return null;
  const algorithm = m[1] as DigestAlgorithm;
  if (m[2]!.length !== HEX_LEN[algorithm]) return null;
  return { algorithm, hex: m[2]! };
}

export function isDigest(s: string): boolean {
  return parseDigest(s) !== null;
}

/** Validates a digest or throws DIGEST_INVALID. Call before a digest touches a path. */
export function assertDigest(s: string): ParsedDigest {
  const d = parseDigest(s);
  if (!d) throw new MfError("DIGEST_INVALID", `invalid digest "${s.slice(0, 200)}"`);
  return d;
}

export function createHasher(algorithm: DigestAlgorithm = "sha256"): Hash {
  return createHash(algorithm);
}

export function digestOf(data: string | Uint8Array, algorithm: DigestAlgorithm = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}

export interface HashFileOptions {
  signal?: AbortSignal;
  /** called with the bytes hashed so far, at most every `progressEvery` bytes and at the end */
  onProgress?: (completed: number, total: number) => void;
  progressEvery?: number;
}

const HASH_CHUNK = 8 << 20;

/**
 * Hashes a file at OpenSSL's speed: two reused buffers, the next read in flight while the current one
 * is hashed, so reading and hashing overlap and no garbage is made per chunk.
 */
export async function digestFile(path: string, algorithm: DigestAlgorithm = "sha256", opts: HashFileOptions = {}): Promise<string> {
  const h = createHash(algorithm);
  const fh = await open(path, "r");
  try {
    const total = (await fh.stat()).size;
    const bufs = [Buffer.allocUnsafe(HASH_CHUNK), Buffer.allocUnsafe(HASH_CHUNK)];
    const every = opts.progressEvery ?? 64 << 20;
    let pos = 0;
    let lastReport = 0;
    let i = 0;
    let pending = fh.read(bufs[0]!, 0, HASH_CHUNK, 0);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      opts.signal?.throwIfAborted();
      const cur = bufs[i]!;
      pos += bytesRead;
      i ^= 1;
      pending = fh.read(bufs[i]!, 0, HASH_CHUNK, pos);
      h.update(cur.subarray(0, bytesRead));
      if (opts.onProgress && (pos - lastReport >= every || pos >= total)) {
        lastReport = pos;
        opts.onProgress(pos, total);
      }
    }
    return `${algorithm}:${h.digest("hex")}`;
  } finally {
    await fh.close();
  }
}
