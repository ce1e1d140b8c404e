/** `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an image index of the manifests whose subject it is. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { MediaType } from "../../core/mediatypes.js";
import { authorize, queryOf, sendJson, type RegistryContext } from "./context.js";
import { compareStrings } from "./repo-store.js";
import { checkDigest } from "./validate.js";

export async function listReferrers(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string, ref: string): Promise<void> {
  const subject = checkDigest(ref);
  await authorize(ctx, request, reply, name, ["pull"]);
  let manifests = await ctx.store.referrers(name, subject);
  // A referrer whose manifest was deleted since is not listed.
  const present = await Promise.all(manifests.map(async (m) => !!(await ctx.store.revision(name, checkDigest(m.digest)))));
  manifests = manifests.filter((_, i) => present[i]).sort((a, b) => compareStrings(a.digest, b.digest));
  const artifactType = queryOf(request).get("artifactType");
  if (artifactType !== null) {
    manifests = manifests.filter((m) => m.artifactType === artifactType);
    reply.header("OCI-Filters-Applied", "artifactType");
  }
  sendJson(reply, 200, { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, MediaType.ociIndex);
}
