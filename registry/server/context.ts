/** What every handler receives: the injected parts plus a few helpers, built once per server. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AuthError, MfError } from "../../core/errors.js";
import { setRequestSubject, type AuthHook, type RegistryAction } from "./auth.js";
import type { MirrorHook } from "./mirror-hook.js";
import type { ParsedDigest } from "../../core/digest.js";
import type { RepoStore } from "./repo-store.js";
import { publicBase, type Signer } from "./signing.js";
import type { UploadSessions } from "./upload-sessions.js";

export interface RegistrySettings {
  publicUrl?: string;
  redirect: boolean;
  allowDelete: boolean;
  manifestMaxBytes: number;
  signedUrlTtlMs: number;
  /** non-distributable layers whose every `urls` entry matches may be absent (off when undefined) */
  allowForeignLayers?: RegExp;
}

/**
 * Called before a manifest PUT sets a tag (by tag or `?tag=`), before anything is stored; throws to refuse
 * the whole PUT (require-signed.ts).
 */
export type TagGuard = (ctx: RegistryContext, request: FastifyRequest, name: string, tag: string, digest: ParsedDigest, bytes: Buffer) => Promise<void>;

export interface RegistryContext {
  store: RepoStore;
  uploads: UploadSessions;
  signer: Signer;
  auth: AuthHook;
  clock: () => number;
  settings: RegistrySettings;
  /** the pull-through mirror (`--mirror`), when configured */
  mirror?: MirrorHook;
  tagGuard?: TagGuard;
}

/**
 * A part the factory adds to the registry app, given the registry's context (the web page of
 * registry/server/ui): injected, so the server itself imports nothing above it.
 */
export type RegistryExtension = (
  app: FastifyInstance,
  ctx: RegistryContext,
  server: { secret: string | Uint8Array; auth: boolean; https: boolean },
) => void;

/** Calls the auth hook; a 401 carries the hook's challenge. */
export async function authorize(
  ctx: RegistryContext,
  request: FastifyRequest,
  reply: FastifyReply,
  repository: string | null,
  actions: RegistryAction[],
): Promise<void> {
  const access = { repository, actions };
  try {
    const subject = await ctx.auth.authorize(request, access);
    if (typeof subject === "string") setRequestSubject(request, subject);
  } catch (e) {
    if (e instanceof MfError && e.code === "UNAUTHORIZED") {
      const challenge = ctx.auth.challenge?.(request, access);
      if (challenge) reply.header("WWW-Authenticate", challenge);
    }
    if (e instanceof MfError) throw e;
    throw new AuthError("DENIED", "access denied", { cause: e });
  }
}

/** Absolute URL of a path on this server, as clients reach it. */
export function absoluteUrl(ctx: RegistryContext, request: FastifyRequest, path: string): string {
  return `${publicBase(request, ctx.settings.publicUrl)}${path}`;
}

/** The query string of a request as a map (first value wins). */
export function queryOf(request: FastifyRequest): URLSearchParams {
  const q = request.url.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : request.url.slice(q + 1));
}

/**
 * Every JSON answer of the API goes out through here, as bytes: fastify appends `; charset=utf-8` to any
 * JSON media type when it serializes a string or an object itself, and clients that compare
 * `Content-Type` exactly (the OCI referrers API requires `application/vnd.oci.image.index.v1+json`)
 * would refuse it.
 */
export function sendJson(reply: FastifyReply, status: number, value: unknown, mediaType = "application/json"): void {
  const body = Buffer.from(JSON.stringify(value));
  reply.code(status).header("Content-Type", mediaType).header("Content-Length", body.length).send(body);
}

export function requireDelete(ctx: RegistryContext): void {
  if (!ctx.settings.allowDelete) throw new MfError("UNSUPPORTED", "deletes are disabled on this registry (--no-delete)");
}
