/**
 * Route paths of the OCI distribution API, shared by the registry server and client (registry.md), and
 * the repository-name grammar both sides check.
 */

/** OCI repository name: lowercase path components joined by `/`. */
export const OCI_NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** OCI tag grammar. */
export const OCI_TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const OCI_NAME_MAX = 255;

export const API_VERSION_HEADER = "Docker-Distribution-API-Version";

/** `/v2/` */
export function basePath(): string {
  return "/v2/";
}

/** `/v2/<name>/manifests/<tag-or-digest>` */
export function manifestPath(name: string, reference: string): string {
  return `/v2/${name}/manifests/${reference}`;
}

/** `/v2/<name>/blobs/<digest>` */
export function blobPath(name: string, digest: string): string {
  return `/v2/${name}/blobs/${digest}`;
}

/** `/v2/<name>/blobs/uploads/`, with `?mount=&from=` or `?digest=` when given. */
export function uploadsPath(name: string, query: { mount?: string; from?: string; digest?: string } = {}): string {
  const q = new URLSearchParams();
  if (query.mount) q.set("mount", query.mount);
  if (query.from) q.set("from", query.from);
  if (query.digest) q.set("digest", query.digest);
  const s = q.toString();
  return `/v2/${name}/blobs/uploads/${s ? `?${s}` : ""}`;
}

/** `/v2/<name>/tags/list` */
export function tagsPath(name: string): string {
  return `/v2/${name}/tags/list`;
}

/** Adds `digest=<d>` to an upload location, which may already carry a query. */
export function withDigestQuery(location: string, digest: string): string {
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  return u.toString();
}
