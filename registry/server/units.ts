/** Human units for settings: durations (`90s`, `10m`, `24h`, `7d`, or ms) and sizes (`8MiB`, `4MB`, or bytes). */
import { MfError } from "../../core/errors.js";

const DURATION: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, k: 1024, kib: 1024, m: 1 << 20, mib: 1 << 20, g: 1 << 30, gib: 1 << 30,
};

/** Milliseconds of `30s`, `10m`, `24h`, `7d`, `1500ms`, or a plain number of ms. */
export function parseDuration(v: string | number): number {
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(String(v));
  if (!m) throw new MfError("BAD_REQUEST", `invalid duration "${v}" (examples: 90s, 10m, 24h, 7d)`);
  return Math.round(Number(m[1]) * DURATION[(m[2] ?? "ms").toLowerCase()]!);
}

/** Bytes of `8MiB`, `4MB`, `512k`, or a plain number of bytes. */
export function parseSize(v: string | number): number {
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return Math.floor(v);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$/i.exec(String(v));
  const unit = SIZE[(m?.[2] ?? "b").toLowerCase()];
  if (!m || unit === undefined) throw new MfError("BAD_REQUEST", `invalid size "${v}" (examples: 8MiB, 4MB, 1048576)`);
  return Math.floor(Number(m[1]) * unit);
}
