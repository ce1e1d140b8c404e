/**
 * The registry's web page: the static files of `registry/web/` at `/` (and `/r/…`, the page's own
 * addresses), served with @fastify/static, and its small read-only JSON API under `/ui/api/`, which can
 * never collide with `/v2/`. The API reads through the registry's RepoStore and shows only what the
 * viewer may pull (session.ts); a repository they may not pull answers exactly like one that does not
 * exist. Nothing here writes to the registry, except the session cookie to the browser.
 *
 * ```
 * GET  /ui/api/info                          {accessControl, signedIn, registry}
 * POST /ui/api/session   {"key":"mfk_…"}     sign in: Set-Cookie mf_session (same-origin JSON only)
 * POST /ui/api/session/end                   sign out
 * GET  /ui/api/repositories?q=&page=&per_page=   {total, page, perPage, items: [{name, tags, size, lastPush}]}
 * GET  /ui/api/repository?name=              {name, tags: [{tag, digest, size, pushedAt, pusher, …}]}
 * GET  /ui/api/manifest?name=&ref=           the manifest, its layers, referrers, and a model's facts
 * ```
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AuthError, MfError, RegistryError } from "../../../core/errors.js";
import { sendJson, queryOf, type RegistryContext, type RegistryExtension } from "../context.js";
import type { AccessSource } from "../access-file.js";
import { publicBase } from "../signing.js";
import { assertName, digestString, parseManifestRef } from "../validate.js";
import { Catalog, type Layer } from "./catalog.js";
import { ModelReader } from "./model.js";
import { Sessions, type Viewer } from "./session.js";

export interface WebOptions {
  /** the access file in force (the page shows what the viewer may pull); undefined: no access control */
  access?: AccessSource;
  /** how long a sign-in lasts (default 12 h) */
  sessionTtlMs?: number;
  /** the folder of the page's files (default: registry/web) */
  assets?: string;
}

const PER_PAGE_DEFAULT = 25;
const PER_PAGE_MAX = 100;
const SIGN_IN_BODY_MAX = 4096;

/** registry/web beside this module's source, or (running from dist/) in the package's root. */
export function defaultAssets(): string {
  const candidates = ["../../web/", "../../../../registry/web/"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  return candidates.find((p) => existsSync(`${p}index.html`)) ?? candidates[0]!;
}

const PAGE_HEADERS: Record<string, string> = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

/**
 * The page as the registry factory's `web` option. With an auth hook but no `access` (so no rules to
 * decide what a visitor may see), the page shows nothing.
 */
export function webPage(options: WebOptions = {}): RegistryExtension {
  return (app, ctx, server) => registerWeb(app, ctx, { ...options, secret: server.secret, closed: server.auth && !options.access, https: server.https });
}

function registerWeb(app: FastifyInstance, ctx: RegistryContext, opts: WebOptions & { secret: string | Uint8Array; closed: boolean; https: boolean }): void {
  const sessions = new Sessions({
    secret: opts.secret,
    access: opts.access,
    closed: opts.closed,
    ttlMs: opts.sessionTtlMs ?? 12 * 3600_000,
    secure: opts.https || (ctx.settings.publicUrl?.startsWith("https:") ?? false),
    clock: ctx.clock,
  });
  const catalog = new Catalog(ctx.store);
  const models = new ModelReader(ctx.store);
  const root = opts.assets ?? defaultAssets();

  app.register(async (web) => {
    web.addHook("onSend", async (_request, reply, payload) => {
      for (const [k, v] of Object.entries(PAGE_HEADERS)) reply.header(k, v);
      return payload;
    });
    await web.register(fastifyStatic, { root, prefix: "/ui/assets/", index: false, wildcard: true, decorateReply: true, cacheControl: true, maxAge: 0 });
    const page = async (_request: FastifyRequest, reply: FastifyReply) => reply.header("Cache-Control", "no-cache").sendFile("index.html");
    web.get("/", page);
    web.get("/r/*", page);
  });

  app.register(async (api) => {
    api.addHook("onSend", async (_request, reply, payload) => {
      reply.header("Cache-Control", "no-store").header("X-Content-Type-Options", "nosniff");
      return payload;
    });

    api.get("/ui/api/info", async (request, reply) => {
      const viewer = sessions.viewer(request);
      sendJson(reply, 200, { accessControl: sessions.accessControl && !opts.closed, signedIn: viewer.apiKey ?? null, registry: registryHost(ctx, request) });
    });

    api.post("/ui/api/session", async (request, reply) => {
      checkSameOrigin(ctx, request);
      if (!opts.access) throw new MfError("BAD_REQUEST", "this registry has no access file: there is nothing to sign in to");
      const body = await readJson(request);
      const key = typeof body.key === "string" ? body.key.trim() : "";
      if (!key) throw new MfError("BAD_REQUEST", "give an API key (mf registry key add prints one)");
      const entry = sessions.findKey(key);
      if (!entry) throw new AuthError("UNAUTHORIZED", "that API key is not known to this registry");
      reply.header("Set-Cookie", sessions.issue(entry));
      sendJson(reply, 200, { signedIn: entry.id });
    });

    api.post("/ui/api/session/end", async (request, reply) => {
      checkSameOrigin(ctx, request);
      request.raw.resume();
      reply.header("Set-Cookie", sessions.clear());
      sendJson(reply, 200, { signedIn: null });
    });

    api.get("/ui/api/repositories", async (request, reply) => {
      const q = queryOf(request);
      const search = (q.get("q") ?? "").trim().toLowerCase().slice(0, 200);
      const perPage = intParam(q.get("per_page"), PER_PAGE_DEFAULT, 1, PER_PAGE_MAX, "per_page");
      const pageNo = intParam(q.get("page"), 1, 1, 1_000_000, "page");
      const viewer = sessions.viewer(request);
      const names = (await ctx.store.repositories()).filter((n) => viewer.mayPull(n) && (!search || n.includes(search)));
      const slice = names.slice((pageNo - 1) * perPage, pageNo * perPage);
      const items = [];
      for (const name of slice) items.push(await catalog.summary(name));
      sendJson(reply, 200, { total: names.length, page: pageNo, perPage, items });
    });

    api.get("/ui/api/repository", async (request, reply) => {
      const name = await visibleRepo(request, sessions.viewer(request));
      sendJson(reply, 200, { name, tags: await catalog.tags(name) });
    });

    api.get("/ui/api/manifest", async (request, reply) => {
      const viewer = sessions.viewer(request);
      const name = await visibleRepo(request, viewer);
      const refText = queryOf(request).get("ref") ?? "";
      const ref = parseManifestRef(refText);
      const d = ref.kind === "digest" ? ref.digest : await ctx.store.tagTarget(name, ref.tag);
      const view = d ? await catalog.manifest(name, d) : null;
      if (!d || !view) throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${ref.text} unknown to ${name}`, { detail: { reference: ref.text } });
      const host = registryHost(ctx, request);
      const pullName = `${host}/${name}${ref.kind === "tag" ? `:${ref.tag}` : `@${ref.text}`}`;
      const insecure = publicBase(request, ctx.settings.publicUrl).startsWith("http:") ? " --insecure" : "";
      const referrers = (await ctx.store.referrers(name, d)).map((r): Layer => ({
        mediaType: r.mediaType, digest: r.digest, size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: r.annotations } : {}),
      }));
      let model;
      let modelError: string | undefined;
      if (view.isModel) {
        try {
          model = await models.facts(view, `${host}/${name}:${ref.kind === "tag" ? ref.tag : "latest"}`);
        } catch (e) {
          modelError = (e as Error).message.slice(0, 300);
        }
      }
      sendJson(reply, 200, {
        name,
        reference: ref.text,
        ...view,
        digest: digestString(d),
        totalSize: await catalog.sizeOf(name, view),
        referrers,
        pull: {
          mf: `mf pull${insecure} ${pullName}`,
          ...(view.isModel ? { ollama: `ollama pull${insecure} ${pullName}` } : {}),
        },
        ...(model ? { model } : {}),
        ...(modelError ? { modelError } : {}),
      });
    });
  });

  /** The repository named by `?name=`, when it exists and the viewer may pull it; else the same 404 either way. */
  async function visibleRepo(request: FastifyRequest, viewer: Viewer): Promise<string> {
    const name = assertName(queryOf(request).get("name") ?? "");
    if (!viewer.mayPull(name) || !(await ctx.store.repoExists(name))) {
      throw new RegistryError("NAME_UNKNOWN", `no repository ${name} that you may pull: it does not exist, or access is denied`, { detail: { name } });
    }
    return name;
  }
}

/** `host:port` (or host) clients name this registry by, for pull commands. */
function registryHost(ctx: RegistryContext, request: FastifyRequest): string {
  return new URL(publicBase(request, ctx.settings.publicUrl)).host;
}

function intParam(v: string | null, fallback: number, min: number, max: number, what: string): number {
  if (v === null || v === "") return fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) < min || Number(v) > max) throw new MfError("BAD_REQUEST", `${what} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

/**
 * A state-changing request must come from the page itself: a browser always sends Origin on a POST, and
 * it must be this registry's own origin (the cookie's SameSite=Strict is the other half).
 */
function checkSameOrigin(ctx: RegistryContext, request: FastifyRequest): void {
  const origin = request.headers.origin;
  const own = new URL(publicBase(request, ctx.settings.publicUrl)).origin;
  if (typeof origin !== "string" || origin !== own) {
    request.raw.resume();
    throw new AuthError("DENIED", "sign-in and sign-out are accepted only from this registry's own page");
  }
}

/** The sign-in body: JSON (a type a cross-site form cannot send), at most SIGN_IN_BODY_MAX bytes. */
async function readJson(request: FastifyRequest): Promise<Record<string, unknown>> {
  const type = String(request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    request.raw.resume();
    throw new MfError("BAD_REQUEST", "send the sign-in as application/json");
  }
  const declared = Number(request.headers["content-length"] ?? 0);
  if (declared > SIGN_IN_BODY_MAX) throw new MfError("BAD_REQUEST", `the sign-in body is larger than ${SIGN_IN_BODY_MAX} bytes`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of request.raw) {
    total += (c as Buffer).length;
    if (total > SIGN_IN_BODY_MAX) throw new MfError("BAD_REQUEST", `the sign-in body is larger than ${SIGN_IN_BODY_MAX} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // below
  }
  throw new MfError("BAD_REQUEST", 'the sign-in body must be JSON: {"key": "mfk_…"}');
}
