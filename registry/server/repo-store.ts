/** The registry's data model over a storage driver: blobs and their links, manifests, tags, referrers. */
import type { Readable } from "node:stream";
import { parseDigest, type ParsedDigest } from "../../core/digest.js";
import { RegistryError } from "../../core/errors.js";
import type { ByteSpan, StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { digestString, isTag } from "./validate.js";

export interface BlobInfo {
  size: number;
  modifiedMs: number;
}

export interface RevisionInfo {
  mediaType: string;
  size: number;
}

/** Who pushed a tag and when (layout.ts pushRecordPath). */
export interface PushRecord {
  /** the manifest the tag was pushed as */
  digest: string;
  /** ms since the epoch */
  pushedAt: number;
  /** `anonymous`, `key:SHA256:…` or `apikey:<name>`; absent when the registry has no access control */
  pusher?: string;
}

/** A referrer as listed in the referrers index. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export class RepoStore {
  constructor(readonly storage: StorageDriver) {}

  // ---- blobs ----

  async blobInfo(d: ParsedDigest): Promise<BlobInfo | null> {
    const s = await this.storage.stat(L.blobPath(d));
    return s && !s.isDir ? { size: s.size, modifiedMs: s.modifiedMs } : null;
  }

  /** The blob's info when `name` may read it, else null. */
  async repoBlob(name: string, d: ParsedDigest): Promise<BlobInfo | null> {
    if (!(await this.storage.stat(L.layerLinkPath(name, d)))) return null;
    return this.blobInfo(d);
  }

  readBlob(d: ParsedDigest, span?: ByteSpan): Promise<Readable> {
    return this.storage.read(L.blobPath(d), span);
  }

  /** A URL the storage itself serves the blob from (S3: pre-signed), or null. */
  async signedBlobUrl(d: ParsedDigest, ttlMs: number): Promise<string | null> {
    return this.storage.signedReadUrl ? this.storage.signedReadUrl(L.blobPath(d), ttlMs) : null;
  }

  async linkBlob(name: string, d: ParsedDigest): Promise<void> {
    await this.storage.putContent(L.layerLinkPath(name, d), Buffer.alloc(0));
  }

  /** Removes `name`'s link to a blob; false when there was none. */
  async unlinkBlob(name: string, d: ParsedDigest): Promise<boolean> {
    if (!(await this.storage.stat(L.layerLinkPath(name, d)))) return false;
    await this.storage.delete(L.layerLinkPath(name, d));
    return true;
  }

  /**
   * For a manifest PUT: true when `name` may read the blob, which is then marked as in use. The link is
   * checked again after the touch: a GC that removed it in between saw the blob unused and keeps it
   * removed only when no touch came before its own re-check (gc.ts), so a true answer is never undone.
   */
  async claimBlob(name: string, d: ParsedDigest): Promise<boolean> {
    if (!(await this.storage.stat(L.layerLinkPath(name, d)))) return false;
    return (await this.touchBlob(d)) && !!(await this.storage.stat(L.layerLinkPath(name, d)));
  }

  /** Marks a blob as recently used, so a concurrent GC sweep keeps it. False when it is gone. */
  async touchBlob(d: ParsedDigest): Promise<boolean> {
    try {
      await this.storage.touch(L.blobPath(d));
      return true;
    } catch (e) {
      if ((e as RegistryError).code === "BLOB_UNKNOWN") return false;
      throw e;
    }
  }

  /** Stores small bytes (a manifest) as a blob, unless that blob exists already (then touches it). */
  async putSmallBlob(d: ParsedDigest, bytes: Uint8Array): Promise<void> {
    if (await this.touchBlob(d)) return;
    await this.storage.putContent(L.blobPath(d), bytes);
  }

  // ---- manifests ----

  async revision(name: string, d: ParsedDigest): Promise<RevisionInfo | null> {
    const raw = await this.storage.getContent(L.revisionPath(name, d), 64 * 1024);
    if (!raw) return null;
    return JSON.parse(raw.toString("utf8")) as RevisionInfo;
  }

  async putRevision(name: string, d: ParsedDigest, info: RevisionInfo): Promise<void> {
    await this.storage.putContent(L.revisionPath(name, d), Buffer.from(JSON.stringify(info)));
  }

  async deleteRevision(name: string, d: ParsedDigest): Promise<void> {
    await this.storage.delete(L.revisionPath(name, d));
  }

  /**
   * For an index PUT: true when `name` holds the child manifest, which is then marked as in use (its blob
   * touched), checked again after the touch like claimBlob.
   */
  async claimManifest(name: string, d: ParsedDigest): Promise<boolean> {
    if (!(await this.storage.stat(L.revisionPath(name, d)))) return false;
    return (await this.touchBlob(d)) && !!(await this.storage.stat(L.revisionPath(name, d)));
  }

  async revisions(name: string): Promise<ParsedDigest[]> {
    const out: ParsedDigest[] = [];
    for (const alg of await this.storage.list(L.revisionsRoot(name))) {
      for (const hex of await this.storage.list(`${L.revisionsRoot(name)}/${alg}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        if (d) out.push(d);
      }
    }
    return out;
  }

  async manifestBytes(d: ParsedDigest, maxBytes: number): Promise<Buffer | null> {
    return this.storage.getContent(L.blobPath(d), maxBytes);
  }

  async tagTarget(name: string, tag: string): Promise<ParsedDigest | null> {
    const raw = await this.storage.getContent(L.tagPath(name, tag), 1024);
    return raw ? parseDigest(raw.toString("utf8").trim()) : null;
  }

  /**
   * Points `tag` at `d`; with `push`, then records who pushed it and when (written after the tag, so a
   * record never claims a push that did not happen; one left from an older push names another digest and
   * no longer counts).
   */
  async putTag(name: string, tag: string, d: ParsedDigest, push?: { pushedAt: number; pusher?: string }): Promise<void> {
    await this.storage.putContent(L.tagPath(name, tag), Buffer.from(digestString(d)));
    if (push) {
      const record: PushRecord = { digest: digestString(d), pushedAt: push.pushedAt, ...(push.pusher !== undefined ? { pusher: push.pusher } : {}) };
      await this.storage.putContent(L.pushRecordPath(name, tag), Buffer.from(JSON.stringify(record)));
    }
  }

  /** The push record of `tag`, when there is one for the manifest the tag names now. */
  async pushRecord(name: string, tag: string, target: ParsedDigest): Promise<PushRecord | null> {
    const raw = await this.storage.getContent(L.pushRecordPath(name, tag), 4096).catch(() => null);
    if (!raw) return null;
    try {
      const r = JSON.parse(raw.toString("utf8")) as PushRecord;
      if (r.digest !== digestString(target) || typeof r.pushedAt !== "number") return null;
      return { digest: r.digest, pushedAt: r.pushedAt, ...(typeof r.pusher === "string" ? { pusher: r.pusher } : {}) };
    } catch {
      return null;
    }
  }

  /** When the tag was last written (ms since the epoch), or null when it is gone. */
  async tagModified(name: string, tag: string): Promise<number | null> {
    return (await this.storage.stat(L.tagPath(name, tag)))?.modifiedMs ?? null;
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    if (!(await this.storage.stat(L.tagPath(name, tag)))) return false;
    await this.storage.delete(L.tagPath(name, tag));
    await this.storage.delete(L.pushRecordPath(name, tag));
    return true;
  }

  async tags(name: string): Promise<string[]> {
    return (await this.storage.list(L.tagsRoot(name))).filter(isTag).sort(compareStrings);
  }

  /** A repository exists while it holds a manifest (tagged or not); blobs alone do not make one. */
  async repoExists(name: string): Promise<boolean> {
    if ((await this.tags(name)).length) return true;
    for (const alg of await this.storage.list(L.revisionsRoot(name))) {
      if ((await this.storage.list(`${L.revisionsRoot(name)}/${alg}`)).some((hex) => parseDigest(`${alg}:${hex}`))) return true;
    }
    return false;
  }

  // ---- referrers ----

  async putReferrer(name: string, subject: ParsedDigest, d: ParsedDigest, desc: ReferrerDescriptor): Promise<void> {
    await this.storage.putContent(L.referrerPath(name, subject, d), Buffer.from(JSON.stringify(desc)));
  }

  async deleteReferrer(name: string, subject: ParsedDigest, d: ParsedDigest): Promise<void> {
    await this.storage.delete(L.referrerPath(name, subject, d));
  }

  async referrers(name: string, subject: ParsedDigest): Promise<ReferrerDescriptor[]> {
    const out: ReferrerDescriptor[] = [];
    for (const d of await this.referrerDigests(name, subject)) {
      const raw = await this.storage.getContent(L.referrerPath(name, subject, d), 1 << 20);
      if (!raw) continue;
      try {
        out.push(JSON.parse(raw.toString("utf8")) as ReferrerDescriptor);
      } catch {
        // not a descriptor (a crash's leftover): no referrer
      }
    }
    return out;
  }

  /** The digests of the manifests indexed as referrers of `subject` (entries named `<alg>-<hex>`). */
  async referrerDigests(name: string, subject: ParsedDigest): Promise<ParsedDigest[]> {
    const out: ParsedDigest[] = [];
    for (const entry of await this.storage.list(L.referrersDir(name, subject))) {
      const d = parseDigest(entry.replace("-", ":"));
      if (d) out.push(d);
    }
    return out;
  }

  // ---- catalog ----

  /** Every repository that holds a manifest, sorted: what the catalog lists. */
  async repositories(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await this.repositoryDirs()) if (await this.repoExists(name)) out.push(name);
    return out;
  }

  /** Every path under repositories/ holding `_manifests` or `_layers` (emptied repositories included), sorted. */
  async repositoryDirs(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (prefix: string, name: string): Promise<void> => {
      const children = await this.storage.list(prefix);
      if (children.includes("_manifests") || children.includes("_layers")) out.push(name);
      for (const c of children) {
        if (c.startsWith("_")) continue;
        await walk(`${prefix}/${c}`, name ? `${name}/${c}` : c);
      }
    };
    await walk(L.REPOS_ROOT, "");
    return out.sort(compareStrings);
  }
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
