/**
 * Garbage collection, safe while the registry serves.
 *
 * Per repository, a manifest is kept when a tag names it, when it was written or used within the grace
 * period (its revision written, or its bytes touched: every manifest PUT touches what it references, a
 * push of the manifest itself included), or when a kept manifest leads to it: the children of a kept
 * index, the referrers (`subject`) of a kept manifest. The other, untagged manifests go. Then every blob
 * no kept manifest references goes, except those modified or touched within the grace period (a finished
 * upload touches its blob), and the repository links to blobs it no longer uses. A repository left with
 * nothing disappears with its last object.
 *
 * Against a concurrent push:
 * - the revisions are listed before the tags are read: a PUT writes its revision before its tag, so a
 *   revision this run never saw is never removed, and one it saw old had its tag written long before;
 * - whatever is removed is checked again right before, and after the removal the blob it stands for is
 *   looked at once more: when a push touched it since the check, the removal is undone. A PUT touches
 *   first and checks that its manifest or link still exists after (RepoStore.claimBlob/claimManifest), so
 *   either the PUT sees the removal and fails cleanly, or the GC sees the touch and puts it back;
 * - a push whose manifest PUT takes longer than the grace period is not protected: `--grace 0s` is for a
 *   registry nobody pushes to while it runs.
 * Upload sessions live outside blobs/ and are never swept here (only expired ones, when `uploadExpiryMs`
 * is given).
 */
import { parseDigest, type ParsedDigest } from "../../core/digest.js";
import { manifestFacts } from "./manifest-refs.js";
import { RepoStore, type BlobInfo } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { UploadSessions } from "./upload-sessions.js";
import { digestString } from "./validate.js";

/** A driver's temporary file is written and renamed within one request: one untouched this long is a crash's leftover. */
const TEMPORARY_MAX_AGE_MS = 3600_000;

export interface GcOptions {
  storage: StorageDriver;
  /** unreferenced blobs and untagged manifests younger than this (by modification or touch time) are kept */
  graceMs: number;
  /** report what would go, delete nothing */
  dryRun?: boolean;
  clock?: () => number;
  /** also remove upload sessions idle longer than this */
  uploadExpiryMs?: number;
  manifestMaxBytes?: number;
  /** called per blob removed (or that would be, in a dry run) */
  onSweep?: (digest: string, size: number) => void;
  /** called per untagged manifest removed from a repository (or that would be) */
  onManifest?: (repository: string, digest: string) => void;
}

export interface GcReport {
  /** manifests kept */
  manifests: number;
  /** untagged manifests removed (or to remove) */
  manifestsRemoved: number;
  markedBlobs: number;
  sweptBlobs: number;
  sweptBytes: number;
  /** unreferenced but younger than the grace period */
  keptYoung: number;
  /** repository links to blobs the repository no longer uses */
  linksRemoved: number;
  /** leftovers of a crash: temporary files, and entries whose name is not valid where they lie */
  leftoversRemoved: number;
  uploadsRemoved: number;
}

interface Seen {
  /** the manifest's blob when it was checked (null: missing) */
  blob: BlobInfo | null;
  young: boolean;
}

export async function collectGarbage(options: GcOptions): Promise<GcReport> {
  return new Collector(options).run();
}

class Collector {
  private readonly store: RepoStore;
  private readonly storage: StorageDriver;
  private readonly clock: () => number;
  private readonly cutoff: number;
  private readonly markStart: number;
  /** blobs (manifests included) some kept manifest of some repository uses */
  private readonly marked = new Set<string>();
  /** per repository, the blobs its kept manifests reference: the links it still needs */
  private readonly used = new Map<string, Set<string>>();
  private readonly report: GcReport = {
    manifests: 0, manifestsRemoved: 0, markedBlobs: 0, sweptBlobs: 0, sweptBytes: 0, keptYoung: 0,
    linksRemoved: 0, leftoversRemoved: 0, uploadsRemoved: 0,
  };

  constructor(private readonly options: GcOptions) {
    this.storage = options.storage;
    this.store = new RepoStore(options.storage);
    this.clock = options.clock ?? Date.now;
    this.markStart = this.clock();
    this.cutoff = this.markStart - options.graceMs;
  }

  async run(): Promise<GcReport> {
    const repositories = await this.store.repositoryDirs();
    for (const repo of repositories) await this.manifests(repo);
    this.report.markedBlobs = this.marked.size;
    await this.blobs();
    if (!this.options.dryRun) {
      for (const repo of repositories) await this.links(repo);
      if (this.storage.sweepTemporary) this.report.leftoversRemoved += await this.storage.sweepTemporary(this.markStart - TEMPORARY_MAX_AGE_MS);
    }
    if (this.options.uploadExpiryMs !== undefined && !this.options.dryRun) {
      const uploads = new UploadSessions({ storage: this.storage, store: this.store, clock: this.clock, expiryMs: this.options.uploadExpiryMs });
      this.report.uploadsRemoved = await uploads.sweep();
    }
    return this.report;
  }

  private isOld(modifiedMs: number): boolean {
    return modifiedMs < this.cutoff;
  }

  /** Whether a manifest of `repo` was written or used within the grace period, with its blob as seen. */
  private async check(repo: string, d: ParsedDigest): Promise<Seen> {
    const revision = await this.storage.stat(L.revisionPath(repo, d));
    const blob = await this.store.blobInfo(d);
    return { blob, young: (!!revision && !this.isOld(revision.modifiedMs)) || (!!blob && !this.isOld(blob.modifiedMs)) };
  }

  /** A touch since `seen` (or a blob that appeared): some push is using it. */
  private touchedSince(seen: BlobInfo | null, now: BlobInfo | null): boolean {
    return !!now && (!seen || now.modifiedMs !== seen.modifiedMs || !this.isOld(now.modifiedMs));
  }

  /** Decides the manifests of one repository: marks what is kept, removes the untagged rest. */
  private async manifests(repo: string): Promise<void> {
    const used = new Set<string>();
    this.used.set(repo, used);
    const revisions = new Map<string, ParsedDigest>();
    for (const d of await this.store.revisions(repo)) revisions.set(digestString(d), d);
    const roots: string[] = [];
    for (const [text, d] of revisions) if ((await this.check(repo, d)).young) roots.push(text);
    // tags after revisions: see the header
    for (const tag of await this.store.tags(repo)) {
      const target = await this.store.tagTarget(repo, tag);
      if (target) roots.push(digestString(target));
    }

    const kept = new Set<string>();
    const follow = async (queue: string[]) => {
      while (queue.length) {
        const text = queue.pop()!;
        const d = revisions.get(text);
        if (!d || kept.has(text)) continue;
        kept.add(text);
        this.marked.add(text);
        const bytes = await this.store.manifestBytes(d, this.options.manifestMaxBytes ?? 64 << 20);
        if (bytes) {
          try {
            const facts = manifestFacts(bytes, undefined);
            for (const b of facts.blobs) {
              this.marked.add(digestString(b));
              used.add(digestString(b));
            }
            queue.push(...facts.manifests.map(digestString));
          } catch {
            // unparseable stored bytes reference nothing we can follow
          }
        }
        queue.push(...(await this.store.referrerDigests(repo, d)).map(digestString));
      }
    };
    await follow(roots);

    for (const [text, d] of revisions) {
      if (kept.has(text)) continue;
      const seen = await this.check(repo, d);
      if (seen.young || !(await this.removeManifest(repo, d, seen))) {
        await follow([text]);
        continue;
      }
      this.report.manifestsRemoved++;
      this.options.onManifest?.(repo, text);
    }
    this.report.manifests += kept.size;
    if (!this.options.dryRun) await this.removeLeftovers(repo);
  }

  /** Removes an untagged manifest from a repository (its referrer entry first); false when a push claimed it meanwhile and it was put back. */
  private async removeManifest(repo: string, d: ParsedDigest, seen: Seen): Promise<boolean> {
    if (this.options.dryRun) return true;
    const revisionPath = L.revisionPath(repo, d);
    const revision = await this.storage.getContent(revisionPath, 64 * 1024);
    let referrer: { path: string; entry: Buffer } | null = null;
    const bytes = seen.blob ? await this.store.manifestBytes(d, this.options.manifestMaxBytes ?? 64 << 20) : null;
    if (bytes) {
      try {
        const subject = manifestFacts(bytes, undefined).subject;
        const path = subject ? L.referrerPath(repo, subject, d) : null;
        const entry = path ? await this.storage.getContent(path, 1 << 20) : null;
        if (path && entry) referrer = { path, entry };
      } catch {
        // unparseable: indexed as no one's referrer
      }
    }
    if (referrer) await this.storage.delete(referrer.path);
    await this.storage.delete(revisionPath);
    if (!this.touchedSince(seen.blob, await this.store.blobInfo(d))) return true;
    if (revision) await putIfAbsent(this.storage, revisionPath, revision);
    if (referrer) await this.storage.putContent(referrer.path, referrer.entry);
    return false;
  }

  /** Entries a crash of an earlier version left beside revisions, links and referrers: names never valid there. */
  private async removeLeftovers(repo: string): Promise<void> {
    const dirs: string[] = [];
    for (const alg of await this.storage.list(L.revisionsRoot(repo))) dirs.push(`${L.revisionsRoot(repo)}/${alg}`);
    for (const alg of await this.storage.list(L.layerLinksRoot(repo))) dirs.push(`${L.layerLinksRoot(repo)}/${alg}`);
    const referrers = `${L.repoPath(repo)}/_referrers`;
    for (const alg of await this.storage.list(referrers)) {
      for (const hex of await this.storage.list(`${referrers}/${alg}`)) dirs.push(`${referrers}/${alg}/${hex}`);
    }
    for (const dir of dirs) {
      const alg = dir.startsWith(referrers) ? null : dir.slice(dir.lastIndexOf("/") + 1);
      for (const name of await this.storage.list(dir)) {
        const valid = alg ? parseDigest(`${alg}:${name}`) : parseDigest(name.replace("-", ":"));
        if (valid) continue;
        const info = await this.storage.stat(`${dir}/${name}`);
        if (info && !info.isDir && this.isOld(info.modifiedMs)) {
          await this.storage.delete(`${dir}/${name}`);
          this.report.leftoversRemoved++;
        }
      }
    }
  }

  /** Sweeps the blobs no kept manifest references, older than the grace period. */
  private async blobs(): Promise<void> {
    for (const alg of await this.storage.list(L.BLOBS_ROOT)) {
      for (const hh of await this.storage.list(`${L.BLOBS_ROOT}/${alg}`)) {
        for (const hex of await this.storage.list(`${L.BLOBS_ROOT}/${alg}/${hh}`)) {
          const d = parseDigest(`${alg}:${hex}`);
          if (!d || this.marked.has(digestString(d))) continue;
          const info = await this.store.blobInfo(d);
          if (!info) continue;
          if (!this.isOld(info.modifiedMs)) {
            this.report.keptYoung++;
            continue;
          }
          this.options.onSweep?.(digestString(d), info.size);
          this.report.sweptBlobs++;
          this.report.sweptBytes += info.size;
          if (!this.options.dryRun) await this.storage.delete(`${L.BLOBS_ROOT}/${alg}/${hh}/${hex}`);
        }
      }
    }
  }

  /**
   * Removes a repository's links to blobs none of its kept manifests references, when link and blob are
   * both older than the grace period (or the blob is gone); put back when a push touched the blob meanwhile.
   */
  private async links(repo: string): Promise<void> {
    const used = this.used.get(repo) ?? new Set<string>();
    for (const alg of await this.storage.list(L.layerLinksRoot(repo))) {
      for (const hex of await this.storage.list(`${L.layerLinksRoot(repo)}/${alg}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        if (!d || used.has(digestString(d))) continue;
        const path = L.layerLinkPath(repo, d);
        const link = await this.storage.stat(path);
        const blob = await this.store.blobInfo(d);
        if (!link || !this.isOld(link.modifiedMs) || (blob && !this.isOld(blob.modifiedMs))) continue;
        await this.storage.delete(path);
        if (this.touchedSince(blob, await this.store.blobInfo(d))) await this.store.linkBlob(repo, d);
        else this.report.linksRemoved++;
      }
    }
  }
}

async function putIfAbsent(storage: StorageDriver, path: string, data: Buffer): Promise<void> {
  if (storage.putContentIfAbsent) await storage.putContentIfAbsent(path, data);
  else if (!(await storage.stat(path))) await storage.putContent(path, data);
}
