/**
 * The audit trail: one event per change the registry made and per refusal, handed to an injected sink
 * (`RegistryServerOptions.audit`; `mf registry serve --audit-log FILE` writes them as JSON lines, cli/audit-log.ts).
 *
 * - `push`: a manifest PUT answered 201 (reference: the tag or digest of the URL; `tags`: its `?tag=`s);
 * - `push-blob`: a blob upload finished (the closing PUT, a monolithic POST, or a cross-repository mount: `from`);
 * - `delete-manifest`, `delete-tag` (with the digest the tag named), `delete-blob` (the repository's link): a DELETE answered 202;
 * - `deny`: the auth hook refused presented credentials (401 or 403, `attempt` and `reason` say what and why,
 *   the token endpoint's refusals included), or any other 403 on /v2/. The 401 that only asks a client to
 *   authenticate or to fetch a wider token (the normal token handshake) is not a denial. A refused
 *   cross-repository mount is one too, though the POST goes on as an ordinary upload (202).
 * Requests that changed nothing for another reason (a 400, a 404) are not audited.
 *
 * `who` is the subject the auth hook allowed (`key:SHA256:…`, `apikey:<id>`, `anonymous`; on a registry
 * without access control everyone is `anonymous`), or for a denial who presented the refused credentials.
 * An event never carries a secret: no header, no query string (upload locations and blob URLs carry
 * MACs), no token; upload references are left out for the same reason.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { TOKEN_PATH } from "../protocol/auth.js";
import { requestRefusal, requestSubject } from "./auth.js";
import { deleteBlob } from "./blobs.js";
import { deleteManifest, putManifest } from "./manifests.js";
import type { RepoStore } from "./repo-store.js";
import { decodeParam as decode, matchRoute, type Match } from "./routes.js";
import { putUpload, startUpload } from "./uploads.js";
import { digestString, isTag, parseManifestRef } from "./validate.js";

/** what the server audits, and what `mf registry gc --audit-log` adds (`retain-delete-tag`, `gc-delete-manifest`) */
export type AuditAction = "push" | "push-blob" | "delete-manifest" | "delete-tag" | "delete-blob" | "deny" | "retain-delete-tag" | "gc-delete-manifest";

export interface AuditEvent {
  /** ISO 8601, UTC */
  time: string;
  who: string;
  action: AuditAction;
  repository: string | null;
  /** a tag or a digest, as the request named it */
  reference?: string;
  digest?: string;
  /** the HTTP status answered (0 for gc's removals) */
  status: number;
  /** the client's address (X-Forwarded-For only from a trusted proxy) */
  address?: string;
  /** push: the extra `?tag=` tags */
  tags?: string[];
  /** push-blob by mount: the repository it came from */
  from?: string;
  /** deny: what was asked (`pull`, `push`, `pull,push`, `delete`, `catalog`, `token`) */
  attempt?: string;
  /** deny: why, in words */
  reason?: string;
}

/** Where audit events go; it must not throw (a sink that fails reports it its own way). */
export type AuditSink = (event: AuditEvent) => void;

/** Adds the audit hooks to a registry app. */
export function registerAudit(app: FastifyInstance, sink: AuditSink, store: RepoStore, clock: () => number): void {
  /** What a tag named before a DELETE removed it (one small read, on tag deletes only). */
  const tagTargets = new WeakMap<FastifyRequest, string>();

  const routeOf = (request: FastifyRequest): Match | null => {
    try {
      return matchRoute(request.method, request.url.split("?")[0]!);
    } catch {
      return null;
    }
  };

  app.addHook("preHandler", async (request) => {
    if (request.method !== "DELETE") return;
    const match = routeOf(request);
    if (match?.route.handler !== deleteManifest) return;
    const [name, ref] = match.params.map(decode);
    if (!name || !ref || !isTag(ref)) return;
    try {
      const target = await store.tagTarget(name, ref);
      if (target) tagTargets.set(request, digestString(target));
    } catch {
      // an invalid name: the handler refuses it, and nothing is audited
    }
  });

  app.addHook("onResponse", async (request, reply) => {
    const status = reply.statusCode;
    const path = request.url.split("?")[0]!;
    const base = { time: new Date(clock()).toISOString(), status, address: request.ip };
    const refusal = requestRefusal(request);
    const v2 = path === "/v2" || path.startsWith("/v2/");
    if (refusal || (status === 403 && v2)) {
      if (!v2 && path !== TOKEN_PATH) return;
      const match = v2 ? routeOf(request) : null;
      const [name, ref] = (match?.params ?? []).map(decode);
      const named = match?.route.named && name !== undefined;
      sink({
        ...base,
        who: refusal?.who ?? requestSubject(request) ?? (request.headers.authorization ? "unverified credentials" : "anonymous"),
        action: "deny",
        repository: refusal?.repository ?? (named ? name! : null),
        ...(match?.route.ref === parseManifestRef && ref !== undefined ? { reference: ref.slice(0, 200) } : {}),
        attempt: refusal?.action ?? request.method,
        ...(refusal ? { reason: refusal.reason } : {}),
      });
      return;
    }
    if (status !== 201 && status !== 202) return;
    const match = routeOf(request);
    if (!match) return;
    const handler = match.route.handler;
    const [name, ref] = match.params.map(decode);
    const who = requestSubject(request) ?? "anonymous";
    const repository = name ?? null;
    const header = (n: string) => {
      const h = reply.getHeader(n);
      return typeof h === "string" ? h : undefined;
    };
    if (handler === putManifest && status === 201) {
      const q = new URLSearchParams(request.url.includes("?") ? request.url.slice(request.url.indexOf("?") + 1) : "");
      const tags = [...new Set(q.getAll("tag"))];
      sink({ ...base, who, action: "push", repository, reference: ref, digest: header("docker-content-digest"), ...(tags.length ? { tags } : {}) });
    } else if ((handler === putUpload || handler === startUpload) && status === 201) {
      const q = new URLSearchParams(request.url.includes("?") ? request.url.slice(request.url.indexOf("?") + 1) : "");
      const from = handler === startUpload && q.get("mount") !== null ? q.get("from") ?? undefined : undefined;
      sink({ ...base, who, action: "push-blob", repository, digest: header("docker-content-digest"), ...(from ? { from } : {}) });
    } else if (handler === deleteManifest && status === 202 && ref !== undefined) {
      const tag = isTag(ref);
      const digest = tag ? tagTargets.get(request) : ref;
      sink({ ...base, who, action: tag ? "delete-tag" : "delete-manifest", repository, reference: ref, ...(digest ? { digest } : {}) });
    } else if (handler === deleteBlob && status === 202) {
      sink({ ...base, who, action: "delete-blob", repository, digest: ref });
    }
  });
}
