/**
 * Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, or `?mount=&from=`),
 * then `PATCH`/`PUT`/`GET`/`DELETE <location>`. The location's last segment is `<uuid>.<hmac>`, bound to
 * the repository; the bytes and offset live in storage (upload-sessions.ts).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { MfError, RegistryError } from "../../core/errors.js";
import { formatUploadRange, parseUploadContentRange } from "../../core/range.js";
import { bodySource } from "./body.js";
import { absoluteUrl, authorize, queryOf, type RegistryContext } from "./context.js";
import type { AppendRequest } from "./upload-sessions.js";
import { assertName, checkDigest, digestString } from "./validate.js";

function uploadLocation(ctx: RegistryContext, request: FastifyRequest, name: string, uuid: string): string {
  return absoluteUrl(ctx, request, `/v2/${name}/blobs/uploads/${ctx.signer.uploadToken(name, uuid)}`);
}

function answerSession(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, uuid: string, offset: number, status: number): void {
  reply
    .code(status)
    .header("Location", uploadLocation(ctx, request, name, uuid))
    .header("Range", formatUploadRange(offset))
    .header("Docker-Upload-UUID", uuid);
  const min = ctx.store.storage.minChunkBytes;
  if (min) reply.header("OCI-Chunk-Min-Length", min);
  if (status !== 204) reply.header("Content-Length", 0);
  reply.send();
}

function answerBlob(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, digest: string): void {
  reply
    .code(201)
    .header("Location", absoluteUrl(ctx, request, `/v2/${name}/blobs/${digest}`))
    .header("Docker-Content-Digest", digest)
    .header("Content-Length", 0)
    .send();
}

function sessionOf(ctx: RegistryContext, name: string, token: string): string {
  const uuid = ctx.signer.verifyUploadToken(name, token);
  if (!uuid) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session unknown", { detail: { location: token.slice(0, 100) } });
  return uuid;
}

/** The body of a PATCH or PUT as an append request, with its `Content-Range` start when given. */
function appendRequest(request: FastifyRequest): AppendRequest {
  const header = request.headers["content-range"];
  const req: AppendRequest = { source: bodySource(request.raw) };
  if (header !== undefined) {
    const r = parseUploadContentRange(header);
    if (!r) throw new RegistryError("RANGE_INVALID", `malformed Content-Range "${header.slice(0, 100)}"`);
    const len = request.headers["content-length"];
    if (len !== undefined && Number(len) !== r.end - r.start + 1) {
      throw new RegistryError("SIZE_INVALID", `Content-Range ${header} does not match Content-Length ${len}`);
    }
    req.start = r.start;
    req.length = r.end - r.start + 1;
  }
  return req;
}

/** A body left unread (a retried closing PUT whose session was already finished) is discarded after the answer. */
function discardUnread(request: FastifyRequest, reply: FastifyReply): void {
  if (request.raw.complete) return;
  reply.header("Connection", "close");
  request.raw.resume();
}

function hasBody(request: FastifyRequest): boolean {
  const len = request.headers["content-length"];
  return (len !== undefined && len !== "0") || request.headers["transfer-encoding"] !== undefined;
}

export async function startUpload(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string): Promise<void> {
  await authorize(ctx, request, reply, name, ["push"]);
  const q = queryOf(request);
  const mount = q.get("mount");
  const digestParam = q.get("digest");
  if (mount !== null) {
    const digest = checkDigest(mount);
    const from = q.get("from");
    if (from !== null && (await mountable(ctx, request, reply, assertName(from), digest))) {
      await ctx.store.linkBlob(name, digest);
      answerBlob(ctx, request, reply, name, digestString(digest));
      return;
    }
  }
  if (digestParam !== null) {
    const digest = checkDigest(digestParam);
    const { uuid } = await ctx.uploads.create(name);
    await ctx.uploads.finish(uuid, name, digest, { source: bodySource(request.raw) });
    answerBlob(ctx, request, reply, name, digestString(digest));
    return;
  }
  const { uuid } = await ctx.uploads.create(name);
  answerSession(ctx, request, reply, name, uuid, 0, 202);
}

/** True when `from` holds the blob and this client may pull from there; the blob is touched for GC. */
async function mountable(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, from: string, digest: ReturnType<typeof checkDigest>): Promise<boolean> {
  try {
    await authorize(ctx, request, reply, from, ["pull"]);
  } catch (e) {
    if (e instanceof MfError && (e.code === "UNAUTHORIZED" || e.code === "DENIED")) {
      reply.removeHeader("WWW-Authenticate");
      return false;
    }
    throw e;
  }
  if (!(await ctx.store.repoBlob(from, digest))) return false;
  return ctx.store.touchBlob(digest);
}

/** Runs an upload step; a 416 tells the client where the session stands. */
async function withSessionHeaders<T>(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, uuid: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof MfError && e.code === "RANGE_INVALID") {
      const offset = (e.detail as { offset?: number } | undefined)?.offset ?? 0;
      reply
        .header("Location", uploadLocation(ctx, request, name, uuid))
        .header("Range", formatUploadRange(offset))
        .header("Docker-Upload-UUID", uuid);
    }
    throw e;
  }
}

export async function patchUpload(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, token: string): Promise<void> {
  const uuid = sessionOf(ctx, name, token);
  await authorize(ctx, request, reply, name, ["push"]);
  const state = await withSessionHeaders(ctx, request, reply, name, uuid, () => ctx.uploads.append(uuid, name, appendRequest(request)));
  answerSession(ctx, request, reply, name, uuid, state.offset, 202);
}

export async function putUpload(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, token: string): Promise<void> {
  const uuid = sessionOf(ctx, name, token);
  await authorize(ctx, request, reply, name, ["push"]);
  const digestParam = queryOf(request).get("digest");
  if (digestParam === null) throw new RegistryError("DIGEST_INVALID", "PUT must name the blob's digest (?digest=)");
  const digest = checkDigest(digestParam);
  const body = hasBody(request) ? appendRequest(request) : undefined;
  await withSessionHeaders(ctx, request, reply, name, uuid, () => ctx.uploads.finish(uuid, name, digest, body));
  if (body) discardUnread(request, reply);
  answerBlob(ctx, request, reply, name, digestString(digest));
}

export async function uploadStatus(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, token: string): Promise<void> {
  const uuid = sessionOf(ctx, name, token);
  await authorize(ctx, request, reply, name, ["push"]);
  const state = await ctx.uploads.status(uuid, name);
  answerSession(ctx, request, reply, name, uuid, state.offset, 204);
}

export async function cancelUpload(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, token: string): Promise<void> {
  const uuid = sessionOf(ctx, name, token);
  await authorize(ctx, request, reply, name, ["push"]);
  await ctx.uploads.cancel(uuid, name);
  reply.code(204).send();
}
