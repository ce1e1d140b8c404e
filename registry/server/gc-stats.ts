/**
 * What `mf registry gc` has done, kept in the registry's storage (`gc/stats.json`) so that the serving
 * registry, a separate process (or any replica on the same S3 bucket), can report it as metrics: runs,
 * bytes freed, blobs and manifests removed, the last run's time. A dry run records nothing. Two gc runs
 * finishing at the same moment may lose one's increment (read, add, write); the figures are counters
 * for a dashboard, not an account.
 */
import type { GcReport } from "./gc.js";
import { GC_STATS_PATH } from "./storage/layout.js";
import type { StorageDriver } from "./storage/driver.js";

export interface GcStats {
  runs: number;
  freedBytes: number;
  blobsRemoved: number;
  manifestsRemoved: number;
  /** ms since the epoch at the end of the last run */
  lastRunMs: number;
}

const ZERO: GcStats = { runs: 0, freedBytes: 0, blobsRemoved: 0, manifestsRemoved: 0, lastRunMs: 0 };

/** The recorded figures; zeros when gc never ran here (or the record is garbled). Rejects when storage fails. */
export async function readGcStats(storage: StorageDriver): Promise<GcStats> {
  const bytes = await storage.getContent(GC_STATS_PATH, 4096);
  if (!bytes) return { ...ZERO };
  try {
    const v = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
    const n = (k: keyof GcStats) => (typeof v[k] === "number" && Number.isFinite(v[k]) && (v[k] as number) >= 0 ? (v[k] as number) : 0);
    return { runs: n("runs"), freedBytes: n("freedBytes"), blobsRemoved: n("blobsRemoved"), manifestsRemoved: n("manifestsRemoved"), lastRunMs: n("lastRunMs") };
  } catch {
    return { ...ZERO };
  }
}

/** Adds one finished (not dry) run to the record; returns the new figures. */
export async function recordGcRun(storage: StorageDriver, report: GcReport, now = Date.now()): Promise<GcStats> {
  const s = await readGcStats(storage);
  const next: GcStats = {
    runs: s.runs + 1,
    freedBytes: s.freedBytes + report.sweptBytes,
    blobsRemoved: s.blobsRemoved + report.sweptBlobs,
    manifestsRemoved: s.manifestsRemoved + report.manifestsRemoved,
    lastRunMs: now,
  };
  await storage.putContent(GC_STATS_PATH, Buffer.from(JSON.stringify(next)));
  return next;
}
