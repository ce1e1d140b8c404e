/** Range / Content-Range parsing shared by the registry server and client. */

export interface ByteRange {
  /** first byte, inclusive */
  start: number;
  /** last byte, inclusive */
  end: number;
}

/**
 * Parses a request `Range: bytes=a-b` header against a resource of `size` bytes.
 * Returns the satisfiable range, `null` when the header is absent or not a single byte range we serve
 * (the caller then sends the whole body), or `"unsatisfiable"` (416: past the end, or last < first).
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | null | "unsatisfiable" {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  const [, a, b] = m;
  if (a === "" && b === "") return null;
  let start: number;
  let end: number;
  if (a === "") {
    const suffix = Number(b);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
    // last < first: RFC 9110 calls the range invalid, and a set of only invalid ranges is refused (416)
    if (b !== "" && Number(b) < start) return "unsatisfiable";
  }
  if (start >= size || size === 0) return "unsatisfiable";
  return { start, end };
}

/**
 * Parses the registry's upload `Content-Range: a-b` (also accepting a `bytes ` prefix and a `/total`
 * suffix). Returns null when malformed.
 */
export function parseUploadContentRange(header: string): ByteRange | null {
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(\d+|\*))?$/.exec(header.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  return { start, end };
}

/** `Content-Range: bytes a-b/N` for a 206 answer. */
export function formatContentRange(r: ByteRange, size: number): string {
  return `bytes ${r.start}-${r.end}/${size}`;
}

/** The registry's `Range: 0-<last>` upload progress header (`0-0` for an empty session, as distribution does). */
export function formatUploadRange(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}
