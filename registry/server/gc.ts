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
 * Repositories are decided several at a time, and the blob prefix folders listed several at a time: on S3
 * every step is a round trip. Within a repository the phases keep the order above; inside a phase, the
 * revisions checked and the tags read or removed are independent and go several at a time, each with its
 * own steps in order. Untagged manifests are removed one after another (a removal that fails keeps what
 * it leads to, which a later one must see), and so are a repository's links: a push that reuses several
 * old blobs while gc removes one link then finds the others looked at after its touch, and kept.
 * Upload sessions live outside blobs/ and are never swept here (only expired ones, when `uploadExpiryMs`
 * is given).
 *
 * With retention rules (retention.ts), per repository first: manifests pulled within `pulled-within` are
 * roots like young ones; untagged manifests count as young until `untagged-older-than` (never less than
 * the grace period); the tags no rule keeps are deleted (each checked again right before: a tag pushed
 * again since it was read stays) and are no roots, so their manifests go by the rules above unless a kept
 * index, a kept subject, a pull or their age keeps them. A push of the same tag landing between that
 * check and the delete loses the tag as if the deletion came after it; its manifest is younger than the
 * grace period and stays, so a tag never names a removed manifest. A removed manifest's pull record goes
 * with it.
 */
import { parseDigest, type ParsedDigest } from "../../core/digest.js";
import { forEachLimit, mapLimit } from "../../core/limit.js";
import { manifestFacts } from "./manifest-refs.js";
import { deletesTags, keptTags, subjectOfTag, type RetentionPolicy } from "./retention.js";
import { RepoStore, type BlobInfo } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { readPullTime } from "./pulls.js";
import { UploadSessions } from "./upload-sessions.js";
import { digestString } from "./validate.js";

/** repositories whose manifests (then links) are decided at once; each one's own steps stay in order */
const REPO_CONCURRENCY = 8;
/** blob prefix folders listed at once */
const PREFIX_CONCURRENCY = 16;
/** within a repository: revisions checked, tags read or removed at once (each one's own steps in order) */
const ITEM_CONCURRENCY = 16;

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
  /** retention rules: tags they do not keep are deleted, pulled manifests kept, untagged ones kept longer */
  retention?: RetentionPolicy;
  /** called per tag retention removes (or would), with the digest it named */
  onTag?: (repository: string, tag: string, digest: string | null) => void;
}

export interface GcReport {
  /** manifests kept */
  manifests: number;
  /** untagged manifests removed (or to remove) */
  manifestsRemoved: number;
  /** tags removed by retention rules (or to remove) */
  tagsRemoved: number;
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

interface TagSeen {
  tag: string;
  /** the digest it named when read */
  target: string | null;
  /** its modification time when read (0 without tag rules, where it is not read) */
  modifiedMs: number;
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
  /** untagged manifests modified or touched since are young (the grace period, or longer: untagged-older-than) */
  private readonly manifestCutoff: number;
  /** manifests pulled since are kept (retention's pulled-within), or null */
  private readonly pulledCutoff: number | null;
  private readonly markStart: number;
  /** blobs (manifests included) some kept manifest of some repository uses */
  private readonly marked = new Set<string>();
  /** per repository, the blobs its kept manifests reference: the links it still needs */
  private readonly used = new Map<string, Set<string>>();
  private readonly report: GcReport = {
    manifests: 0, manifestsRemoved: 0, tagsRemoved: 0, markedBlobs: 0, sweptBlobs: 0, sweptBytes: 0, keptYoung: 0,
    linksRemoved: 0, leftoversRemoved: 0, uploadsRemoved: 0,
  };

  constructor(private readonly options: GcOptions) {
    this.storage = options.storage;
    this.store = new RepoStore(options.storage);
    this.clock = options.clock ?? Date.now;
    this.markStart = this.clock();
    this.cutoff = this.markStart - options.graceMs;
    const retention = options.retention;
    this.manifestCutoff = this.markStart - Math.max(options.graceMs, retention?.untaggedOlderThanMs ?? 0);
    this.pulledCutoff = retention?.pulledWithinMs === undefined ? null : this.markStart - retention.pulledWithinMs;
  }

  async run(): Promise<GcReport> {
    const repositories = await this.store.repositoryDirs();
    // repositories are independent of one another until the sweep, which waits for all of them
    await forEachLimit(repositories, REPO_CONCURRENCY, (repo) => this.manifests(repo));
    this.report.markedBlobs = this.marked.size;
    await this.blobs();
    if (!this.options.dryRun) {
      await forEachLimit(repositories, REPO_CONCURRENCY, (repo) => this.links(repo));
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
    const young = (ms: number) => ms >= this.manifestCutoff;
    return { blob, young: (!!revision && young(revision.modifiedMs)) || (!!blob && young(blob.modifiedMs)) };
  }

  /** The manifests of `repo` pulled since the pulled-within cutoff (their pull records, pulls.ts). */
  private async pulledRecently(repo: string): Promise<Set<string>> {
    const out = new Set<string>();
    if (this.pulledCutoff === null) return out;
    for (const alg of await this.storage.list(L.pulledRoot(repo))) {
      for (const hex of await this.storage.list(`${L.pulledRoot(repo)}/${alg}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        const at = d ? await readPullTime(this.storage, repo, d) : null;
        if (d && at !== null && at >= this.pulledCutoff) out.add(digestString(d));
      }
    }
    return out;
  }

  /** Removes the pull records of manifests `repo` no longer holds (older than the grace period: a pull racing a push is left). */
  private async removePullRecords(repo: string, remaining: Set<string>): Promise<void> {
    for (const alg of await this.storage.list(L.pulledRoot(repo))) {
      for (const hex of await this.storage.list(`${L.pulledRoot(repo)}/${alg}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        if (d && remaining.has(digestString(d))) continue;
        const path = `${L.pulledRoot(repo)}/${alg}/${hex}`;
        const info = await this.storage.stat(path);
        if (info && !info.isDir && this.isOld(info.modifiedMs)) await this.storage.delete(path);
      }
    }
  }

  /** Deletes a tag retention does not keep, unless it changed since it was read (pushed again). */
  private async removeTag(repo: string, seen: TagSeen): Promise<void> {
    if (!this.options.dryRun) {
      const path = L.tagPath(repo, seen.tag);
      const now = await this.storage.stat(path);
      const target = await this.store.tagTarget(repo, seen.tag);
      if (!now || now.modifiedMs !== seen.modifiedMs || (target ? digestString(target) : null) !== seen.target) return;
      await this.storage.delete(path);
      // the tag's push record (who, when) goes with it; a stale one would not count anyway (repo-store.ts)
      await this.storage.delete(L.pushRecordPath(repo, seen.tag)).catch(() => undefined);
    }
    this.report.tagsRemoved++;
    this.options.onTag?.(repo, seen.tag, seen.target);
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
    const pulled = await this.pulledRecently(repo);
    // roots in the revisions' order, whichever check ends first
    const rooted = await mapLimit(revisions, ITEM_CONCURRENCY, async ([text, d]) => pulled.has(text) || (await this.check(repo, d)).young);
    const roots = [...revisions.keys()].filter((_, i) => rooted[i]);
    // tags after revisions: see the header
    const policy = this.options.retention;
    const tags = await mapLimit(await this.store.tags(repo), ITEM_CONCURRENCY, async (tag): Promise<TagSeen> => {
      const target = await this.store.tagTarget(repo, tag);
      const modifiedMs = deletesTags(policy) ? ((await this.storage.stat(L.tagPath(repo, tag)))?.modifiedMs ?? 0) : 0;
      return { tag, target: target ? digestString(target) : null, modifiedMs };
    });
    // without tag rules every tag is kept; with them, the ordinary tags they keep, and the subject tags below
    const ruled = deletesTags(policy)
      ? keptTags(tags.map((t) => ({ tag: t.tag, modifiedMs: t.modifiedMs, pulled: !!t.target && pulled.has(t.target) })), policy)
      : null;
    const keptTagNames = new Set<string>();
    for (const t of tags) {
      if (ruled && !ruled.has(t.tag)) continue;
      keptTagNames.add(t.tag);
      if (t.target) roots.push(t.target);
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

    if (ruled) {
      // a subject tag (sha256-<hex>…) stays while what it names or its own target is kept; a signature of
      // a kept signature in the next round
      for (let changed = true; changed; ) {
        changed = false;
        for (const t of tags) {
          const subject = subjectOfTag(t.tag);
          if (!subject || keptTagNames.has(t.tag)) continue;
          if (kept.has(digestString(subject)) || (t.target !== null && kept.has(t.target))) {
            keptTagNames.add(t.tag);
            changed = true;
            if (t.target) await follow([t.target]);
          }
        }
      }
      await forEachLimit(tags.filter((t) => !keptTagNames.has(t.tag)), ITEM_CONCURRENCY, (t) => this.removeTag(repo, t));
    }

    const remaining = new Set(revisions.keys());
    for (const [text, d] of revisions) {
      if (kept.has(text)) continue;
      const seen = await this.check(repo, d);
      if (seen.young || !(await this.removeManifest(repo, d, seen))) {
        await follow([text]);
        continue;
      }
      remaining.delete(text);
      this.report.manifestsRemoved++;
      this.options.onManifest?.(repo, text);
    }
    this.report.manifests += kept.size;
    if (!this.options.dryRun) {
      await this.removePullRecords(repo, remaining);
      await this.removeLeftovers(repo);
    }
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
      // each of the up to 256 prefix folders is a listing (a round trip on S3): listed several at a time,
      // in their order; the unmarked blobs are then decided one after another, as a push that reuses
      // several of them while one is removed then finds the others looked at after its touch, and kept
      const folders = await this.storage.list(`${L.BLOBS_ROOT}/${alg}`);
      const listed = await mapLimit(folders, PREFIX_CONCURRENCY, (hh) => this.storage.list(`${L.BLOBS_ROOT}/${alg}/${hh}`));
      for (const [i, hh] of folders.entries()) {
        for (const hex of listed[i]!) {
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
