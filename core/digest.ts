/** Digests: parsing, validation and hashing (node's crypto, i.e. OpenSSL). */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
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

/** Hashes a file by streaming it. */
export async function digestFile(path: string, algorithm: DigestAlgorithm = "sha256", signal?: AbortSignal): Promise<string> {
  const h = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) h.update(chunk as Buffer);
  return `${algorithm}:${h.digest("hex")}`;
}
