/** Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<tag-or-digest>`, stored as exact bytes. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { createHasher, type ParsedDigest } from "../../core/digest.js";
import { RegistryError } from "../../core/errors.js";
import { forEachLimit } from "../../core/limit.js";
import { requestSubject } from "./auth.js";
import { absoluteUrl, authorize, queryOf, requireDelete, type RegistryContext } from "./context.js";
import { manifestFacts, type ForeignLayer } from "./manifest-refs.js";
import { assertTag, parseManifestRef, digestString, type ManifestRef } from "./validate.js";

/** storage calls a DELETE by digest makes at once over the repository's tags */
const TAG_CONCURRENCY = 16;

/** How many `?tag=` a manifest PUT may carry (the spec asks registries to take at least 10). */
const MAX_QUERY_TAGS = 100;

async function resolveRef(ctx: RegistryContext, name: string, ref: ManifestRef): Promise<ParsedDigest> {
  const d = ref.kind === "digest" ? ref.digest : await ctx.store.tagTarget(name, ref.tag);
  if (!d || !(await ctx.store.revision(name, d))) {
    throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${ref.text} unknown to ${name}`, { detail: { reference: ref.text } });
  }
  return d;
}

export async function getManifest(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, refText: string): Promise<void> {
  const ref = parseManifestRef(refText);
  await authorize(ctx, request, reply, name, ["pull"]);
  if (ctx.mirror?.covers(name)) await ctx.mirror.manifest(name, ref);
  const d = await resolveRef(ctx, name, ref);
  const rev = (await ctx.store.revision(name, d))!;
  const text = digestString(d);
  reply.code(200).type(rev.mediaType).header("Docker-Content-Digest", text).header("ETag", `"${text}"`).header("Content-Length", rev.size);
  if (request.method === "HEAD") {
    reply.send();
    return;
  }
  const bytes = await ctx.store.manifestBytes(d, ctx.settings.manifestMaxBytes + 1);
  if (!bytes) throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${refText} lost its bytes`, { detail: { reference: refText } });
  reply.send(bytes);
}

/** Reads a request body whole, refusing (413) more than `max` bytes. */
async function readCapped(request: FastifyRequest, max: number): Promise<Buffer> {
  const declared = request.headers["content-length"];
  const tooLarge = () => new RegistryError("MANIFEST_TOO_LARGE", `manifest is larger than ${max} bytes`, { detail: { limit: max } });
  if (declared !== undefined && Number(declared) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request.raw) {
    total += (chunk as Buffer).length;
    if (total > max) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Why a missing layer that names `urls` is not excused, or null when the --allow-foreign-layers policy excuses it. */
function foreignRefusal(ctx: RegistryContext, layer: ForeignLayer): string | null {
  const allow = ctx.settings.allowForeignLayers;
  if (!allow) return "a non-distributable layer: this registry accepts those unpushed only with --allow-foreign-layers";
  for (const u of layer.urls) {
    let url: URL | undefined;
    try {
      url = new URL(u);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.hash !== "" || !allow.test(u)) {
      return `its url ${JSON.stringify(u.slice(0, 200))} is not allowed by --allow-foreign-layers`;
    }
  }
  return null;
}

export async function putManifest(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, refText: string): Promise<void> {
  const ref = parseManifestRef(refText);
  // OCI 1.1: `?tag=` (repeatable) tags the manifest too, typically on a PUT by digest
  const extraTags = [...new Set(queryOf(request).getAll("tag"))];
  if (extraTags.length > MAX_QUERY_TAGS) throw new RegistryError("TAG_INVALID", `at most ${MAX_QUERY_TAGS} tags per manifest PUT`);
  for (const t of extraTags) assertTag(t);
  await authorize(ctx, request, reply, name, ["push"]);
  const bytes = await readCapped(request, ctx.settings.manifestMaxBytes);
  const algorithm = ref.kind === "digest" ? ref.digest.algorithm : "sha256";
  const d: ParsedDigest = { algorithm, hex: createHasher(algorithm).update(bytes).digest("hex") };
  if (ref.kind === "digest" && ref.digest.hex !== d.hex) {
    throw new RegistryError("DIGEST_INVALID", `manifest digest is ${digestString(d)}, not ${ref.text}`, {
      detail: { expected: ref.text, actual: digestString(d) },
    });
  }
  const facts = manifestFacts(bytes, request.headers["content-type"]);
  // Every referenced blob must be readable here (touching them tells a concurrent GC to keep them), except
  // non-distributable layers the foreign-layer policy lets live only at their urls.
  const foreign = new Map(facts.foreign.map((f) => [digestString(f.digest), f]));
  for (const b of facts.blobs) {
    if (await ctx.store.claimBlob(name, b)) continue;
    const layer = foreign.get(digestString(b));
    const refusal = layer ? foreignRefusal(ctx, layer) : "";
    if (refusal === null) continue;
    throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `blob ${digestString(b)} unknown to ${name}${refusal ? ` (${refusal})` : ""}`, {
      detail: { digest: digestString(b) },
    });
  }
  for (const m of facts.manifests) {
    if (!(await ctx.store.claimManifest(name, m))) {
      throw new RegistryError("MANIFEST_BLOB_UNKNOWN", `manifest ${digestString(m)} unknown to ${name}`, { detail: { digest: digestString(m) } });
    }
  }
  if (ctx.tagGuard) for (const t of [...(ref.kind === "tag" ? [ref.tag] : []), ...extraTags]) await ctx.tagGuard(ctx, request, name, t, d, bytes);
  await ctx.store.putSmallBlob(d, bytes);
  await ctx.store.putRevision(name, d, { mediaType: facts.mediaType, size: bytes.length });
  if (facts.subject) {
    await ctx.store.putReferrer(name, facts.subject, d, {
      mediaType: facts.mediaType,
      digest: digestString(d),
      size: bytes.length,
      ...(facts.artifactType !== undefined ? { artifactType: facts.artifactType } : {}),
      ...(facts.annotations !== undefined ? { annotations: facts.annotations } : {}),
    });
    reply.header("OCI-Subject", digestString(facts.subject));
  }
  const push = { pushedAt: ctx.clock(), pusher: requestSubject(request) };
  if (ref.kind === "tag") await ctx.store.putTag(name, ref.tag, d, push);
  for (const t of extraTags) await ctx.store.putTag(name, t, d, push);
  if (extraTags.length > 0) reply.header("OCI-Tag", extraTags);
  reply
    .code(201)
    .header("Location", absoluteUrl(ctx, request, `/v2/${name}/manifests/${digestString(d)}`))
    .header("Docker-Content-Digest", digestString(d))
    .header("Content-Length", 0)
    .send();
}

export async function deleteManifest(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, refText: string): Promise<void> {
  const ref = parseManifestRef(refText);
  await authorize(ctx, request, reply, name, ["delete"]);
  requireDelete(ctx);
  if (ref.kind === "tag") {
    if (!(await ctx.store.deleteTag(name, ref.tag))) {
      throw new RegistryError("MANIFEST_UNKNOWN", `tag ${ref.tag} unknown to ${name}`, { detail: { reference: ref.text } });
    }
  } else {
    const d = await resolveRef(ctx, name, ref);
    const text = digestString(d);
    // every tag naming it goes too: a storage round trip or more each, so several at a time (on S3, one
    // after the other made a DELETE of a manifest with 75 tags take 20 s)
    await forEachLimit(await ctx.store.tags(name), TAG_CONCURRENCY, async (tag) => {
      const target = await ctx.store.tagTarget(name, tag);
      if (target && digestString(target) === text) await ctx.store.deleteTag(name, tag);
    });
    const bytes = await ctx.store.manifestBytes(d, ctx.settings.manifestMaxBytes + 1);
    if (bytes) {
      try {
        const facts = manifestFacts(bytes, undefined);
        if (facts.subject) await ctx.store.deleteReferrer(name, facts.subject, d);
      } catch {
        // stored bytes that no longer parse have no referrer entry to remove
      }
    }
    await ctx.store.deleteRevision(name, d);
  }
  reply.code(202).header("Content-Length", 0).send();
}
