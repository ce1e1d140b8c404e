/**
 * Garbage collection, safe while the registry serves: mark every blob that some manifest of some
 * repository references (and the manifests themselves), then sweep the other blobs, except those modified
 * or touched after `now - grace`. A manifest PUT touches the blobs it references before it writes the
 * manifest, and a finished upload touches its blob, so a blob in use during the mark is always young
 * enough to be kept. Upload sessions live outside blobs/ and are never swept here (only expired ones,
 * when `uploadExpiryMs` is given).
 */
import { parseDigest } from "../../core/digest.js";
import { manifestFacts } from "./manifest-refs.js";
import { RepoStore } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { UploadSessions } from "./upload-sessions.js";
import { digestString } from "./validate.js";

export interface GcOptions {
  storage: StorageDriver;
  /** unreferenced blobs younger than this (by modification or touch time) are kept */
  graceMs: number;
  /** report what would go, delete nothing */
  dryRun?: boolean;
  clock?: () => number;
  /** also remove upload sessions idle longer than this */
  uploadExpiryMs?: number;
  manifestMaxBytes?: number;
  /** called per blob removed (or that would be, in a dry run) */
  onSweep?: (digest: string, size: number) => void;
}

export interface GcReport {
  manifests: number;
  markedBlobs: number;
  sweptBlobs: number;
  sweptBytes: number;
  /** unreferenced but younger than the grace period */
  keptYoung: number;
  uploadsRemoved: number;
}

export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  const clock = options.clock ?? Date.now;
  const store = new RepoStore(options.storage);
  const markStart = clock();
  const report: GcReport = { manifests: 0, markedBlobs: 0, sweptBlobs: 0, sweptBytes: 0, keptYoung: 0, uploadsRemoved: 0 };

  const marked = new Set<string>();
  for (const repo of await store.repositories()) {
    for (const d of await store.revisions(repo)) {
      report.manifests++;
      marked.add(digestString(d));
      const bytes = await store.manifestBytes(d, options.manifestMaxBytes ?? 64 << 20);
      if (!bytes) continue;
      try {
        const facts = manifestFacts(bytes, undefined);
        for (const b of [...facts.blobs, ...facts.manifests]) marked.add(digestString(b));
      } catch {
        // unparseable stored bytes reference nothing we can follow
      }
    }
  }
  report.markedBlobs = marked.size;

  const cutoff = markStart - options.graceMs;
  for (const alg of await options.storage.list(L.BLOBS_ROOT)) {
    for (const hh of await options.storage.list(`${L.BLOBS_ROOT}/${alg}`)) {
      for (const hex of await options.storage.list(`${L.BLOBS_ROOT}/${alg}/${hh}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        if (!d || marked.has(digestString(d))) continue;
        const info = await store.blobInfo(d);
        if (!info) continue;
        if (info.modifiedMs >= cutoff) {
          report.keptYoung++;
          continue;
        }
        options.onSweep?.(digestString(d), info.size);
        report.sweptBlobs++;
        report.sweptBytes += info.size;
        if (!options.dryRun) await options.storage.delete(`${L.BLOBS_ROOT}/${alg}/${hh}/${hex}`);
      }
    }
  }

  if (options.uploadExpiryMs !== undefined && !options.dryRun) {
    const uploads = new UploadSessions({ storage: options.storage, store, clock, expiryMs: options.uploadExpiryMs });
    report.uploadsRemoved = await uploads.sweep();
  }
  return report;
}
