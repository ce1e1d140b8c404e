/**
 * Scrub: re-hashes every stored blob and checks every manifest of every repository against what is
 * stored, changing nothing. Reports blobs whose bytes no longer match their digest, manifests whose bytes
 * or referenced blobs (config, layers, children of an index) are missing or unreadable from their
 * repository, and tags that name no manifest. Safe while the registry serves: what a concurrent delete or
 * GC removes between two reads is not reported.
 */
import { createHasher, parseDigest, type ParsedDigest } from "../../core/digest.js";
import { isMfError } from "../../core/errors.js";
import { forEachLimit } from "../../core/limit.js";
import { manifestFacts } from "./manifest-refs.js";
import { RepoStore } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { digestString } from "./validate.js";

export type ScrubProblem =
  | { kind: "corrupt-blob"; digest: string; size: number; actual: string; usedBy: string[] }
  | { kind: "lost-manifest"; manifest: string }
  | { kind: "missing-blob"; digest: string; manifest: string }
  | { kind: "unlinked-blob"; digest: string; manifest: string }
  | { kind: "missing-manifest"; digest: string; referencedBy: string }
  | { kind: "invalid-manifest"; manifest: string; reason: string }
  | { kind: "broken-tag"; tag: string; target: string | null };

export interface ScrubOptions {
  storage: StorageDriver;
  manifestMaxBytes?: number;
  /** blobs hashed at once (S3 reads gain from a few in parallel) */
  concurrency?: number;
  /** called with each problem as soon as it is certain (corrupt blobs once every manifest is read) */
  onProblem?: (p: ScrubProblem) => void;
}

export interface ScrubReport {
  blobs: number;
  bytes: number;
  manifests: number;
  tags: number;
  problems: ScrubProblem[];
}

/** One line per problem, as `mf registry scrub` prints it. */
export function describeProblem(p: ScrubProblem): string {
  switch (p.kind) {
    case "corrupt-blob":
      return `corrupt blob ${p.digest} (its ${p.size} bytes hash to ${p.actual})${p.usedBy.length ? `, used by ${p.usedBy.join(", ")}` : ""}`;
    case "lost-manifest":
      return `manifest ${p.manifest} lost its bytes (its blob is missing)`;
    case "missing-blob":
      return `missing blob ${p.digest} referenced by ${p.manifest}`;
    case "unlinked-blob":
      return `blob ${p.digest} referenced by ${p.manifest} is not readable from its repository (no link)`;
    case "missing-manifest":
      return `missing manifest ${p.digest} referenced by ${p.referencedBy}`;
    case "invalid-manifest":
      return `invalid manifest ${p.manifest}: ${p.reason}`;
    case "broken-tag":
      return p.target ? `tag ${p.tag} names missing manifest ${p.target}` : `tag ${p.tag} holds no digest`;
  }
}

export async function scrub(options: ScrubOptions): Promise<ScrubReport> {
  const { storage } = options;
  const store = new RepoStore(storage);
  const maxBytes = options.manifestMaxBytes ?? 64 << 20;
  const report: ScrubReport = { blobs: 0, bytes: 0, manifests: 0, tags: 0, problems: [] };
  const problem = (p: ScrubProblem) => {
    report.problems.push(p);
    options.onProblem?.(p);
  };

  // 1. every blob, re-hashed
  const corrupt = new Map<string, Extract<ScrubProblem, { kind: "corrupt-blob" }>>();
  const digests: ParsedDigest[] = [];
  for (const alg of await storage.list(L.BLOBS_ROOT)) {
    for (const hh of await storage.list(`${L.BLOBS_ROOT}/${alg}`)) {
      for (const hex of await storage.list(`${L.BLOBS_ROOT}/${alg}/${hh}`)) {
        const d = parseDigest(`${alg}:${hex}`);
        if (d && d.hex.startsWith(hh)) digests.push(d);
      }
    }
  }
  await forEachLimit(digests, options.concurrency ?? 4, async (d) => {
    const hashed = await hashBlob(store, d);
    if (!hashed) return;
    report.blobs++;
    report.bytes += hashed.size;
    if (hashed.hex !== d.hex) {
      corrupt.set(digestString(d), { kind: "corrupt-blob", digest: digestString(d), size: hashed.size, actual: `${d.algorithm}:${hashed.hex}`, usedBy: [] });
    }
  });

  // 2. every manifest and tag of every repository
  for (const repo of await store.repositoryDirs()) {
    for (const d of await store.revisions(repo)) {
      const name = `${repo}@${digestString(d)}`;
      const found: ScrubProblem[] = [];
      const use = (b: ParsedDigest) => corrupt.get(digestString(b))?.usedBy.push(name);
      const bytes = await store.manifestBytes(d, maxBytes).catch((e: unknown) => {
        if (isMfError(e)) return null;
        throw e;
      });
      if (!bytes) {
        found.push({ kind: "lost-manifest", manifest: name });
      } else {
        use(d);
        try {
          const facts = manifestFacts(bytes, undefined);
          for (const b of facts.blobs) {
            use(b);
            if (!(await store.blobInfo(b))) found.push({ kind: "missing-blob", digest: digestString(b), manifest: name });
            else if (!(await storage.stat(L.layerLinkPath(repo, b)))) found.push({ kind: "unlinked-blob", digest: digestString(b), manifest: name });
          }
          for (const m of facts.manifests) {
            if (!(await store.revision(repo, m))) found.push({ kind: "missing-manifest", digest: digestString(m), referencedBy: name });
          }
        } catch (e) {
          found.push({ kind: "invalid-manifest", manifest: name, reason: (e as Error).message });
        }
      }
      report.manifests++;
      // a manifest removed meanwhile (a delete, a GC) has no problems
      if (!found.length || !(await storage.stat(L.revisionPath(repo, d)))) continue;
      for (const p of found) problem(p);
    }
    for (const tag of await store.tags(repo)) {
      report.tags++;
      const target = await store.tagTarget(repo, tag);
      if (target && (await store.revision(repo, target))) continue;
      // re-read: a tag moved or deleted meanwhile is not broken
      const again = await store.tagTarget(repo, tag);
      if (!(await storage.stat(L.tagPath(repo, tag)))) continue;
      if (again && (await store.revision(repo, again))) continue;
      problem({ kind: "broken-tag", tag: `${repo}:${tag}`, target: again ? digestString(again) : null });
    }
  }
  for (const p of corrupt.values()) problem(p);
  return report;
}

/** The blob's bytes re-hashed, or null when it is gone (deleted meanwhile). */
async function hashBlob(store: RepoStore, d: ParsedDigest): Promise<{ hex: string; size: number } | null> {
  let stream;
  try {
    stream = await store.readBlob(d);
  } catch (e) {
    if (isMfError(e) && e.code === "BLOB_UNKNOWN") return null;
    throw e;
  }
  const hash = createHasher(d.algorithm);
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: hash.digest("hex"), size };
}
