/**
 * `mf registry serve --mirror NS=URL`: the pull-through mirror's settings from flags and the config file
 * (`mirrors:` entries carry credentials, read from files so they never sit in a command line or a log).
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Argv } from "yargs";
import { MfError } from "../core/errors.js";
import type { Mirror, MirrorSpec } from "../registry/server/mirror/index.js";
import type { StorageDriver } from "../registry/server/storage/driver.js";
import { parseDuration } from "../registry/server/units.js";

export interface MirrorArgs {
  mirror?: string | string[];
  "mirror-allow"?: string | string[];
  "mirror-ttl": string;
  mirrors?: unknown;
  config?: string;
}

export function mirrorOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option("mirror", { type: "string", array: true, describe: "NAMESPACE=URL: pull names under NAMESPACE/ through from that registry (repeatable), e.g. ollama=https://registry.ollama.ai" })
    .option("mirror-allow", { type: "string", array: true, describe: "only these mirrored names (ollama/library/llama3, ollama/library/*, ollama/**); repeatable; default: all under the namespace" })
    .option("mirror-ttl", { type: "string", default: "10m", describe: "re-check a mirrored tag upstream when it is older than this" })
    // only from --config: a list of {namespace, upstream, username, passwordFile, tokenFile, keyFile, allow}
    .option("mirrors", { hidden: true, describe: "mirrors with credentials (config file only)" }) as unknown as Argv<T>;
}

function readSecret(path: string, base: string, what: string): string {
  try {
    return readFileSync(resolve(base, path), "utf8").trim();
  } catch (e) {
    throw new MfError("FILE_NOT_FOUND", `${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** `mirrors:` entries of the config file: `{namespace, upstream, username, passwordFile, tokenFile, keyFile, allow}`. */
function fromConfig(list: unknown, base: string): MirrorSpec[] {
  if (list === undefined) return [];
  if (!Array.isArray(list)) throw new MfError("BAD_REQUEST", "mirrors: expected a list of {namespace, upstream, …}");
  return list.map((x: unknown) => {
    if (!x || typeof x !== "object") throw new MfError("BAD_REQUEST", "mirrors: each entry is a mapping {namespace, upstream, …}");
    const e = x as Record<string, unknown>;
    const where = `mirrors: ${String(e.namespace)}`;
    const str = (k: string): string | undefined => {
      if (e[k] === undefined) return undefined;
      if (typeof e[k] !== "string") throw new MfError("BAD_REQUEST", `${where}: ${k} must be a string`);
      return e[k];
    };
    const allow = e.allow === undefined ? undefined : [e.allow].flat().map(String);
    const username = str("username");
    const passwordFile = str("passwordFile");
    const tokenFile = str("tokenFile");
    const keyFile = str("keyFile");
    if ((username === undefined) !== (passwordFile === undefined)) throw new MfError("BAD_REQUEST", `${where}: username and passwordFile go together`);
    return {
      namespace: str("namespace") ?? "",
      upstream: str("upstream") ?? "",
      allow,
      credentials: {
        ...(username !== undefined ? { username, password: readSecret(passwordFile!, base, where) } : {}),
        ...(tokenFile !== undefined ? { token: readSecret(tokenFile, base, where) } : {}),
        ...(keyFile !== undefined ? { sshKey: readSecret(keyFile, base, where) } : {}),
      },
    };
  });
}

/** The mirror configured by the flags and the config file, or undefined (loaded only then). */
export async function openMirror(args: MirrorArgs, storage: StorageDriver, manifestMaxBytes: number): Promise<Mirror | undefined> {
  const flags = args.mirror === undefined ? [] : [args.mirror].flat().map(String);
  if (!flags.length && args.mirrors === undefined) {
    if (args["mirror-allow"] !== undefined) throw new MfError("BAD_REQUEST", "--mirror-allow needs a --mirror");
    return undefined;
  }
  const m = await import("../registry/server/mirror/index.js");
  const base = args.config ? dirname(resolve(args.config)) : process.cwd();
  let specs = [...fromConfig(args.mirrors, base), ...flags.map(m.parseMirrorFlag)];
  specs = m.assignAllowList(specs, args["mirror-allow"] === undefined ? [] : [args["mirror-allow"]].flat().map(String));
  return new m.Mirror({
    storage,
    mirrors: specs,
    tagTtlMs: parseDuration(args["mirror-ttl"]),
    manifestMaxBytes,
    log: (line) => process.stderr.write(`mf registry: ${line}\n`),
  });
}
