/**
 * Administration of a registry with keys: `mf registry key add|list|revoke` edit the API keys of an access
 * file (the serving registry reloads it by itself), and `mf registry ls` / `mf registry rm` list and
 * delete repositories and tags through the API, with a token from this client's key or stored API key.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Argv, CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { forEachLimit, mapLimit } from "../../core/limit.js";
import type { RegistryClient } from "../../registry/client/index.js";
import { manifestPath, tagsPath } from "../../registry/protocol/paths.js";
import { table } from "../table.js";

function readAccess(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw new MfError("FILE_NOT_FOUND", `cannot read access file ${path}: ${(e as Error).message}`);
  }
}

/** Replaces the file in one rename, so the watching registry never reads half of it. */
function writeAccess(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/** requests `mf registry rm` makes at once */
const RM_CONCURRENCY = 8;

/** The access-file editor (yaml, ssh2) is loaded on use: `mf registry serve` shares this module and must not keep it resident. */
const accessEdit = () => import("../../registry/server/access-edit.js");

const accessOption = <T>(y: Argv<T>) => y.option("access", { type: "string", demandOption: true, describe: "the registry's access file (YAML)" });

const keyAdd: CommandModule<object, { id: string; access: string; allow: string[]; catalog: boolean }> = {
  command: "add <id>",
  describe: "create an API key (printed once) with the given access",
  builder: (y) =>
    accessOption(y)
      .positional("id", { type: "string", demandOption: true, describe: "a name for the key (e.g. ci)" })
      .option("allow", { type: "string", array: true, default: [], describe: 'GLOB=ACTIONS, e.g. "team-a/*=pull,push" (repeatable)' })
      .option("catalog", { type: "boolean", default: false, describe: "may list repositories" }) as never,
  handler: async (args) => {
    const { addApiKey, parseAllow } = await accessEdit();
    const rules = parseAllow(args.allow);
    if (!Object.keys(rules).length && !args.catalog) throw new MfError("BAD_REQUEST", 'give at least one --allow "GLOB=ACTIONS"');
    const { text, secret } = addApiKey(readAccess(args.access), args.id, rules, { catalog: args.catalog, source: args.access });
    writeAccess(args.access, text);
    process.stderr.write(`added API key "${args.id}" to ${args.access}; it is shown only now:\n`);
    process.stdout.write(`${secret}\n`);
    process.stderr.write(`use it with \`mf login HOST\` (stdin) or as a password, e.g. skopeo --creds ${args.id}:<key>\n`);
  },
};

const keyList: CommandModule<object, { access: string }> = {
  command: "list",
  describe: "list the API keys and ssh keys of an access file",
  builder: (y) => accessOption(y) as never,
  handler: async (args) => {
    const { AccessPolicy } = await import("../../registry/server/access.js");
    const policy = AccessPolicy.parse(readAccess(args.access), args.access);
    const rules = (g: { rules: { glob: string; actions: Set<string> }[]; catalog: boolean }) =>
      [...g.rules.map((r) => `${r.glob}=${[...r.actions].join(",")}`), ...(g.catalog ? ["catalog"] : [])].join(" ");
    const rows = [
      ...policy.apiKeys.map((k) => ["apikey", k.id, k.created ?? "", rules(k)]),
      ...policy.keys.map((k) => ["ssh", `${k.key.fingerprint}${k.key.comment ? ` ${k.key.comment}` : ""}`, "", rules(k)]),
    ];
    if (policy.anonymous.rules.length) rows.push(["anonymous", "", "", rules(policy.anonymous)]);
    process.stdout.write(table(["KIND", "ID", "CREATED", "ACCESS"], rows));
  },
};

const keyRevoke: CommandModule<object, { id: string; access: string }> = {
  command: "revoke <id>",
  describe: "remove an API key",
  builder: (y) => accessOption(y).positional("id", { type: "string", demandOption: true }) as never,
  handler: async (args) => {
    const { revokeApiKey } = await accessEdit();
    writeAccess(args.access, revokeApiKey(readAccess(args.access), args.id, args.access));
    process.stderr.write(`revoked API key "${args.id}"\n`);
  },
};

export const registryKeyCommand: CommandModule<object, object> = {
  command: "key <command>",
  describe: "manage API keys in an access file (add, list, revoke)",
  builder: (y) => y.command(keyAdd).command(keyList).command(keyRevoke).demandCommand(1),
  handler: () => {},
};

interface ApiArgs {
  target: string;
  insecure: boolean;
  key?: string;
}

/** `HOST[/REPO[:TAG]]` → base URL, repository, tag. */
function splitTarget(target: string, insecure: boolean): { base: string; repo?: string; tag?: string } {
  const m = /^(?:(https?):\/\/)?([^/]+)(?:\/(.+?))?(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?$/.exec(target);
  if (!m) throw new MfError("BAD_REQUEST", `expected HOST[/REPOSITORY[:TAG]], got "${target}"`);
  const scheme = m[1] ?? (insecure ? "http" : "https");
  return { base: `${scheme}://${m[2]}`, repo: m[3]?.toLowerCase(), tag: m[4] };
}

/**
 * The registry client is loaded only by the commands that talk to a registry (ls, rm): `mf registry
 * serve` shares this file's command tree and must not carry undici, tar and ssh2 in its resident memory.
 */
async function withApi<T>(args: ApiArgs, fn: (client: RegistryClient) => Promise<T>): Promise<T> {
  const [{ RegistryClient }, { cliAuthenticator }] = await Promise.all([import("../../registry/client/index.js"), import("../credentials.js")]);
  const client = new RegistryClient({ authenticate: cliAuthenticator(args.key) });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function getJson<T>(client: RegistryClient, url: string): Promise<{ body: T; next?: string }> {
  const { readAll } = await import("../../registry/client/http.js");
  const res = await client.http.send({ method: "GET", url });
  const body = JSON.parse((await readAll(res.body, 16 << 20)).toString("utf8")) as T;
  const link = res.headers.link;
  const m = /<([^>]+)>;\s*rel="next"/.exec(Array.isArray(link) ? link[0]! : link ?? "");
  return { body, next: m ? new URL(m[1]!, url).toString() : undefined };
}

const apiOptions = <T>(y: Argv<T>) =>
  y
    .option("insecure", { type: "boolean", default: false, describe: "use plain HTTP" })
    .option("key", { type: "string", describe: "private key file (default MF_KEY or ~/.mf/id_ed25519)" });

const lsCommand: CommandModule<object, ApiArgs> = {
  command: "ls <target>",
  describe: "list a registry's repositories (HOST) or a repository's tags (HOST/REPO)",
  builder: (y) => apiOptions(y).positional("target", { type: "string", demandOption: true }) as never,
  handler: (args) =>
    withApi(args, async (client) => {
      const { base, repo } = splitTarget(args.target, args.insecure);
      let url: string | undefined = repo ? `${base}${tagsPath(repo)}` : `${base}/v2/_catalog`;
      while (url) {
        const page: { body: { repositories?: string[]; tags?: string[] }; next?: string } = await getJson(client, url);
        for (const item of (repo ? page.body.tags : page.body.repositories) ?? []) process.stdout.write(`${item}\n`);
        url = page.next;
      }
    }),
};

/** Tags asked for per page by `rm REPO` (it follows the registry's Link header to the next). */
const RM_PAGE = 100;
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");
const GC_NOTE = "the space is freed by `mf registry gc` on the registry (untagged manifests older than its --grace)";

/** Every tag of a repository, page after page. */
async function allTags(client: RegistryClient, base: string, repo: string): Promise<string[]> {
  const out: string[] = [];
  let url: string | undefined = `${base}${tagsPath(repo)}?n=${RM_PAGE}`;
  while (url) {
    const page: { body: { tags?: string[] | null }; next?: string } = await getJson(client, url);
    out.push(...(page.body.tags ?? []));
    url = page.next;
  }
  return out;
}

/** DELETE that counts "already gone" (404) as done; false then. */
async function deleteGone(client: RegistryClient, url: string): Promise<boolean> {
  const { httpStatusOf } = await import("../../registry/client/http.js");
  try {
    (await client.http.send({ method: "DELETE", url })).body.resume();
    return true;
  } catch (e) {
    if (httpStatusOf(e) === 404) return false;
    throw e;
  }
}

const rmCommand: CommandModule<object, ApiArgs> = {
  command: "rm <target>",
  describe: "delete a tag (HOST/REPO:TAG) or every tag and tagged manifest of a repository (HOST/REPO); `mf registry gc` frees the space",
  builder: (y) => apiOptions(y).positional("target", { type: "string", demandOption: true }) as never,
  handler: (args) =>
    withApi(args, async (client) => {
      const { base, repo, tag } = splitTarget(args.target, args.insecure);
      if (!repo) throw new MfError("BAD_REQUEST", "name a repository: HOST/REPO[:TAG]");
      if (tag) {
        (await client.http.send({ method: "DELETE", url: `${base}${manifestPath(repo, tag)}` })).body.resume();
        process.stderr.write(`deleted ${repo}:${tag}; ${GC_NOTE}\n`);
        return;
      }
      // every tag first (deleting while paging would shift the pages), then each manifest they name by
      // digest, which also removes the other tags naming it
      const { httpStatusOf } = await import("../../registry/client/http.js");
      const tags = await allTags(client, base, repo);
      // what each tag names, several requests at a time (one after the other, 150 tags took 20 s on S3)
      const targets = await mapLimit(tags, RM_CONCURRENCY, async (t) => {
        try {
          const head = await client.http.send({ method: "HEAD", url: `${base}${manifestPath(repo, t)}`, headers: { accept: MANIFEST_ACCEPT } });
          head.body.resume();
          const d = head.headers["docker-content-digest"];
          return typeof d === "string" ? d : undefined;
        } catch (e) {
          // a tag naming no manifest (or deleted meanwhile): deleted by name below
          if (httpStatusOf(e) !== 404) throw e;
          return undefined;
        }
      });
      const digests = new Set(targets.filter((d) => d !== undefined));
      const untargeted = tags.filter((_, i) => targets[i] === undefined);
      const deleted = await mapLimit(digests, RM_CONCURRENCY, (d) => deleteGone(client, `${base}${manifestPath(repo, d)}`));
      const manifests = deleted.filter(Boolean).length;
      await forEachLimit(untargeted, RM_CONCURRENCY, (t) => deleteGone(client, `${base}${manifestPath(repo, t)}`));
      process.stderr.write(`deleted ${repo} (${tags.length} tags, ${manifests} manifests); ${GC_NOTE}\n`);
    }),
};

export const registryAdminCommands = [registryKeyCommand, lsCommand, rmCommand];
