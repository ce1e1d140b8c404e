/** Blob reads and deletes: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>` and the signed blob URL. */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ParsedDigest } from "../../core/digest.js";
import { AuthError, RegistryError } from "../../core/errors.js";
import { formatContentRange, parseRangeHeader } from "../../core/range.js";
import { absoluteUrl, authorize, queryOf, requireDelete, type RegistryContext } from "./context.js";
import type { ArrivingBlob } from "./mirror-hook.js";
import type { BlobInfo } from "./repo-store.js";
import { checkDigest, digestString } from "./validate.js";

/** Where signed blob URLs live (outside /v2/, so no Authorization is asked). */
export const SIGNED_BLOB_PREFIX = "/_mf/blobs/";

export async function getBlob(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, ref: string): Promise<void> {
  const digest = checkDigest(ref);
  await authorize(ctx, request, reply, name, ["pull"]);
  let info = await ctx.store.repoBlob(name, digest);
  // A mirrored name the registry lacks: fetched from upstream, served while it arrives (from this
  // registry's own signed URL, even on S3: the storage has no bytes yet).
  let arriving: ArrivingBlob | null = null;
  if (!info && ctx.mirror?.covers(name)) {
    arriving = await ctx.mirror.blob(name, digest);
    info = arriving ? { size: arriving.size, modifiedMs: ctx.clock() } : await ctx.store.repoBlob(name, digest);
  }
  if (!info) throw new RegistryError("BLOB_UNKNOWN", `blob ${ref} unknown to ${name}`, { detail: { digest: ref } });
  if (request.method === "GET" && ctx.settings.redirect) {
    const text = digestString(digest);
    // Storage that serves reads itself (S3: a pre-signed URL, ranges included) gets them; else the signed
    // /_mf/blobs/ URL of this registry, which any replica verifies with the shared secret.
    let location = arriving ? null : await ctx.store.signedBlobUrl(digest, ctx.settings.signedUrlTtlMs);
    if (!location) {
      const expires = ctx.clock() + ctx.settings.signedUrlTtlMs;
      location = absoluteUrl(ctx, request, `${SIGNED_BLOB_PREFIX}${text}?${ctx.signer.blobQuery(text, expires)}`);
    }
    reply.code(307).header("Location", location).header("Docker-Content-Digest", text).header("Content-Length", 0).send();
    return;
  }
  await serveBlob(ctx, request, reply, digest, info, arriving);
}

export async function getSignedBlob(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, ref: string): Promise<void> {
  const digest = checkDigest(ref);
  const q = queryOf(request);
  if (!ctx.signer.verifyBlobQuery(digestString(digest), q.get("expires") ?? undefined, q.get("sig") ?? undefined, ctx.clock())) {
    throw new AuthError("DENIED", "blob URL signature is invalid or expired; ask the registry again");
  }
  let info = await ctx.store.blobInfo(digest);
  const arriving = info ? null : (ctx.mirror?.arriving(digest) ?? null);
  if (arriving) info = { size: arriving.size, modifiedMs: ctx.clock() };
  if (!info) throw new RegistryError("BLOB_UNKNOWN", `blob ${ref} unknown`, { detail: { digest: ref } });
  await serveBlob(ctx, request, reply, digest, info, arriving);
}

async function serveBlob(
  ctx: RegistryContext,
  request: FastifyRequest,
  reply: FastifyReply,
  digest: ParsedDigest,
  info: BlobInfo,
  arriving: ArrivingBlob | null = null,
): Promise<void> {
  const text = digestString(digest);
  reply
    .header("Docker-Content-Digest", text)
    .header("Accept-Ranges", "bytes")
    .header("ETag", `"${text}"`)
    .header("Cache-Control", "max-age=31536000")
    .type("application/octet-stream");
  const range = parseRangeHeader(request.headers.range, info.size);
  if (range === "unsatisfiable") {
    reply.header("Content-Range", `bytes */${info.size}`);
    throw new RegistryError("RANGE_INVALID", `range ${request.headers.range} not satisfiable for ${info.size} bytes`, {
      detail: { size: info.size },
    });
  }
  if (range) {
    reply.code(206).header("Content-Range", formatContentRange(range, info.size)).header("Content-Length", range.end - range.start + 1);
  } else {
    reply.code(200).header("Content-Length", info.size);
  }
  if (request.method === "HEAD") {
    reply.send();
    return;
  }
  if (info.size === 0) {
    reply.send(Buffer.alloc(0));
    return;
  }
  reply.send(arriving ? arriving.read(range ?? undefined) : await ctx.store.readBlob(digest, range ?? undefined));
}

export async function deleteBlob(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, ref: string): Promise<void> {
  const digest = checkDigest(ref);
  await authorize(ctx, request, reply, name, ["delete"]);
  requireDelete(ctx);
  if (!(await ctx.store.unlinkBlob(name, digest))) {
    throw new RegistryError("BLOB_UNKNOWN", `blob ${ref} unknown to ${name}`, { detail: { digest: ref } });
  }
  reply.code(202).header("Content-Length", 0).send();
}
