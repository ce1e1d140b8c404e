/**
 * Where everything lives in registry storage. Every path is built here, from names, tags and digests
 * that registry/server/validate.ts has already checked, so nothing from a request reaches a driver raw.
 *
 * ```
 * <root>/
 * ├── secret.key                                  HMAC key (cli: --secret-file default; not a driver path)
 * ├── blobs/<alg>/<hh>/<hex>/data                 blob bytes (layers, configs and manifests), written once,
 * │                                               by a move after the digest is verified; mtime = last use
 * ├── repositories/<name…>/                       <name> may have several segments (library/llama)
 * │   ├── _layers/<alg>/<hex>                     link: this repository may read that blob (empty file)
 * │   ├── _manifests/revisions/<alg>/<hex>        {"mediaType","size"} of a manifest stored as a blob
 * │   ├── _manifests/tags/<tag>                   the tag's manifest digest (text)
 * │   ├── _manifests/pushes/<tag>                 {"digest","pushedAt","pusher"}: who last pushed the tag and
 * │                                               when (written after the tag, removed with it; it counts
 * │                                               only while its digest is the tag's)
 * │   ├── _manifests/tags/<tag>                   the tag's manifest digest (text); its mtime = when it was
 * │   │                                           pushed (retention's "most recent")
 * │   ├── _manifests/pulled/<alg>/<hex>           when the manifest was last pulled (ms since the epoch, text),
 * │   │                                           rewritten at most once per --pull-record-interval (pulls.ts)
 * │   └── _referrers/<alg>/<subject-hex>/<alg>-<hex>   descriptor (JSON) of a manifest whose subject is that digest
 * ├── uploads/<uuid>/
 * │   ├── data                                    bytes received so far (bytes past state.offset are garbage)
 * │   ├── sealed                                  (S3, sha512 only) data moved aside to be hashed by reading
 * │   └── state.json                              {"repository","offset","startedAt","updatedAt"}: the truth;
 * │                                               + "sha256" (resumable hash state) on S3
 * ├── auth/nonces/<bucket>/<sha256 of nonce>      token-request nonces seen (bucket = ts / 600 s), shared
 * │                                               by replicas on the same storage; old buckets are removed
 * ├── gc/stats.json                               what `mf registry gc` did so far (gc-stats.ts), for metrics
 * └── .mf/                                        the driver's own objects, never a driver path: on a
 *                                                 filesystem tmp/<random> (small objects being written,
 *                                                 renamed into place when whole); on S3 data/<id> (completed
 *                                                 multipart uploads that blob links name), staged/<id>/<n>
 * ```
 * On S3, `data` of an upload is a write state (multipart upload id, parts, staged objects: s3-write.ts)
 * and `blobs/…/data` of a large blob is a link to `.mf/data/<id>` (s3.ts).
 * Segments starting with `_` can never be repository name components (names start with [a-z0-9]), and
 * nothing of a repository, tag or digest starts with `.`. Every other name is an ordinary one: names
 * containing `.tmp-` included (a store written before temporary files moved to `.mf/tmp/` may hold
 * `<name>.tmp-<12 hex>` leftovers of a crash beside objects: gc removes those that are not valid names
 * where they lie, scrub reports leftover tags).
 */
import type { ParsedDigest } from "../../../core/digest.js";

export function blobPath(d: ParsedDigest): string {
  return `blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}/data`;
}

export const BLOBS_ROOT = "blobs";
export const REPOS_ROOT = "repositories";
export const UPLOADS_ROOT = "uploads";
export const GC_STATS_PATH = "gc/stats.json";

export function repoPath(name: string): string {
  return `${REPOS_ROOT}/${name}`;
}

export function layerLinkPath(name: string, d: ParsedDigest): string {
  return `${repoPath(name)}/_layers/${d.algorithm}/${d.hex}`;
}

export function layerLinksRoot(name: string): string {
  return `${repoPath(name)}/_layers`;
}

export function revisionPath(name: string, d: ParsedDigest): string {
  return `${repoPath(name)}/_manifests/revisions/${d.algorithm}/${d.hex}`;
}

export function revisionsRoot(name: string): string {
  return `${repoPath(name)}/_manifests/revisions`;
}

export function tagPath(name: string, tag: string): string {
  return `${repoPath(name)}/_manifests/tags/${tag}`;
}

export function tagsRoot(name: string): string {
  return `${repoPath(name)}/_manifests/tags`;
}

export function pushRecordPath(name: string, tag: string): string {
  return `${repoPath(name)}/_manifests/pushes/${tag}`;
}

export function pulledPath(name: string, d: ParsedDigest): string {
  return `${repoPath(name)}/_manifests/pulled/${d.algorithm}/${d.hex}`;
}

export function pulledRoot(name: string): string {
  return `${repoPath(name)}/_manifests/pulled`;
}

export function referrersDir(name: string, subject: ParsedDigest): string {
  return `${repoPath(name)}/_referrers/${subject.algorithm}/${subject.hex}`;
}

export function referrerPath(name: string, subject: ParsedDigest, d: ParsedDigest): string {
  return `${referrersDir(name, subject)}/${d.algorithm}-${d.hex}`;
}

export function uploadDir(uuid: string): string {
  return `${UPLOADS_ROOT}/${uuid}`;
}

export function uploadDataPath(uuid: string): string {
  return `${uploadDir(uuid)}/data`;
}

export function uploadSealedPath(uuid: string): string {
  return `${uploadDir(uuid)}/sealed`;
}

export function uploadStatePath(uuid: string): string {
  return `${uploadDir(uuid)}/state.json`;
}

export const NONCES_ROOT = "auth/nonces";

export function nonceBucketDir(bucket: number): string {
  return `${NONCES_ROOT}/${bucket}`;
}

export function noncePath(bucket: number, hashHex: string): string {
  return `${nonceBucketDir(bucket)}/${hashHex}`;
}
