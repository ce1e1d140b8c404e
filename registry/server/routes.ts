/**
 * The whole HTTP surface in one table. Repository names contain `/`, so paths are matched here with
 * regular expressions (as distribution does) rather than by fastify's per-segment router; every captured
 * name is validated before a handler sees it.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { MfError, RegistryError } from "../../core/errors.js";
import { deleteBlob, getBlob, getSignedBlob, SIGNED_BLOB_PREFIX } from "./blobs.js";
import { authorize, sendJson, type RegistryContext } from "./context.js";
import { deleteManifest, getManifest, putManifest } from "./manifests.js";
import { listReferrers } from "./referrers.js";
import { catalog, listTags } from "./tags.js";
import { cancelUpload, patchUpload, putUpload, startUpload, uploadStatus } from "./uploads.js";
import { assertName, checkDigest, parseManifestRef } from "./validate.js";

type Handler = (ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, ...params: string[]) => Promise<void>;

export interface Route {
  methods: string[];
  pattern: RegExp;
  handler: Handler;
  /** carries blob bytes: no request timeout, only the idle timeout */
  blob?: boolean;
  /** the first capture is a repository name */
  named?: boolean;
  /** validates the capture after the name (a reference, a digest, an upload location) */
  ref?: (s: string) => unknown;
}

async function base(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await authorize(ctx, request, reply, null, []);
  sendJson(reply, 200, {});
}

const N = "(.+)";
/** Upload locations are `<uuid>.<mac>` (signing.ts); anything else cannot name a session. */
function uploadToken(s: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(s)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session unknown", { detail: { location: s.slice(0, 100) } });
  return s;
}
export const ROUTES: Route[] = [
  { methods: ["GET", "HEAD"], pattern: /^\/v2\/?$/, handler: base },
  { methods: ["GET"], pattern: /^\/v2\/_catalog$/, handler: catalog },
  { methods: ["GET"], pattern: new RegExp(`^/v2/${N}/tags/list$`), handler: listTags, named: true },
  { methods: ["GET"], pattern: new RegExp(`^/v2/${N}/referrers/([^/]+)$`), handler: listReferrers, named: true, ref: checkDigest },
  { methods: ["GET", "HEAD"], pattern: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: getManifest, named: true, ref: parseManifestRef },
  { methods: ["PUT"], pattern: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: putManifest, named: true, ref: parseManifestRef },
  { methods: ["DELETE"], pattern: new RegExp(`^/v2/${N}/manifests/([^/]+)$`), handler: deleteManifest, named: true, ref: parseManifestRef },
  { methods: ["POST"], pattern: new RegExp(`^/v2/${N}/blobs/uploads/?$`), handler: startUpload, named: true, blob: true },
  { methods: ["PATCH"], pattern: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: patchUpload, named: true, blob: true, ref: uploadToken },
  { methods: ["PUT"], pattern: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: putUpload, named: true, blob: true, ref: uploadToken },
  { methods: ["GET"], pattern: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: uploadStatus, named: true, ref: uploadToken },
  { methods: ["DELETE"], pattern: new RegExp(`^/v2/${N}/blobs/uploads/([^/]+)$`), handler: cancelUpload, named: true, ref: uploadToken },
  { methods: ["GET", "HEAD"], pattern: new RegExp(`^/v2/${N}/blobs/([^/]+)$`), handler: getBlob, named: true, blob: true, ref: checkDigest },
  { methods: ["DELETE"], pattern: new RegExp(`^/v2/${N}/blobs/([^/]+)$`), handler: deleteBlob, named: true, ref: checkDigest },
  { methods: ["GET", "HEAD"], pattern: new RegExp(`^${SIGNED_BLOB_PREFIX}([^/]+)$`), handler: getSignedBlob, blob: true, ref: checkDigest },
];

export interface Match {
  route: Route;
  params: string[];
}

/** The route for a method and raw path; throws UNSUPPORTED (405) or NAME_UNKNOWN (404) when none. */
export function matchRoute(method: string, path: string): Match {
  let pathMatched = false;
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (!route.methods.includes(method)) continue;
    return { route, params: m.slice(1) };
  }
  if (pathMatched) throw new MfError("UNSUPPORTED", `${method} is not supported on ${path.slice(0, 200)}`);
  throw new RegistryError("NAME_UNKNOWN", `no registry endpoint at ${path.slice(0, 200)}`);
}

/** Validates a match's parameters (names, then references) before anything touches storage. */
export function checkParams(match: Match): string[] {
  if (match.route.named) assertName(match.params[0]!);
  const ref = match.params[match.route.named ? 1 : 0];
  if (match.route.ref && ref !== undefined) match.route.ref(ref);
  return match.params;
}

/** A captured path parameter decoded; one with a malformed escape is kept as is (and fails validation). */
export function decodeParam(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
