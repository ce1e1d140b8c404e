/** Listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both with `n`/`last` pagination and `Link`. */
import type { FastifyReply, FastifyRequest } from "fastify";
import { MfError, RegistryError } from "../../core/errors.js";
import { authorize, queryOf, sendJson, type RegistryContext } from "./context.js";

const MAX_PAGE = 10_000;

interface Page {
  items: string[];
  /** the Link header's URL when more remain */
  next?: string;
}

function paginate(all: string[], request: FastifyRequest, path: string): Page {
  const q = queryOf(request);
  const nText = q.get("n");
  const last = q.get("last");
  let n = MAX_PAGE;
  if (nText !== null) {
    if (!/^\d{1,9}$/.test(nText)) throw new MfError("BAD_REQUEST", `invalid page size n=${nText.slice(0, 20)}`);
    n = Math.min(Number(nText), MAX_PAGE);
  }
  const rest = last === null ? all : all.filter((x) => x > last);
  const items = rest.slice(0, n);
  const page: Page = { items };
  if (rest.length > items.length && items.length > 0) {
    page.next = `${path}?n=${n}&last=${encodeURIComponent(items[items.length - 1]!)}`;
  }
  return page;
}

export async function listTags(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply, name: string): Promise<void> {
  await authorize(ctx, request, reply, name, ["pull"]);
  if (!(await ctx.store.repoExists(name))) {
    throw new RegistryError("NAME_UNKNOWN", `repository ${name} unknown`, { detail: { name } });
  }
  const page = paginate(await ctx.store.tags(name), request, `/v2/${name}/tags/list`);
  if (page.next) reply.header("Link", `<${page.next}>; rel="next"`);
  sendJson(reply, 200, { name, tags: page.items });
}

export async function catalog(ctx: RegistryContext, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  await authorize(ctx, request, reply, null, ["pull"]);
  const page = paginate(await ctx.store.repositories(), request, "/v2/_catalog");
  if (page.next) reply.header("Link", `<${page.next}>; rel="next"`);
  sendJson(reply, 200, { repositories: page.items });
}
