/**
 * The client's credentials: API keys stored per registry host by `mf login` in `<home>/config.json`
 * (0600, `{"auths": {"host:port": {"apikey": "…"}}}`), and the ssh key (`--key` / MF_KEY, default
 * `<home>/id_ed25519`) that signs token requests when no API key is stored. A missing key file at the
 * default path means anonymous access; a key named explicitly (`--key`, MF_KEY, the config file) must
 * exist, so a mistyped path is an error, not a silent anonymous client; an unusable key is a clear error.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { MfError } from "../core/errors.js";
import { keyAuthenticator } from "../registry/client/auth.js";
import type { Authenticate } from "../registry/client/index.js";
import { loadPrivateKey, type SshKey } from "../registry/protocol/keys.js";
import { cliContext } from "./context.js";

interface ConfigFile {
  auths?: Record<string, { apikey?: string }>;
  [k: string]: unknown;
}

export function configPath(home: string): string {
  return join(home, "config.json");
}

export function readConfig(home: string): ConfigFile {
  const path = configPath(home);
  if (!existsSync(path)) return {};
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as ConfigFile) : {};
  } catch (e) {
    throw new MfError("BAD_REQUEST", `${path} is not valid JSON: ${(e as Error).message}`);
  }
}

function writeConfig(home: string, cfg: ConfigFile): void {
  const path = configPath(home);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** `host[:port]` as requests name it, from `HOST`, `http://HOST/…` or `HOST/ns/model`. */
export function hostKey(host: string): string {
  const s = host.trim();
  try {
    if (/^https?:\/\//i.test(s)) return new URL(s).host.toLowerCase();
  } catch {
    /* fall through */
  }
  return s.split("/")[0]!.toLowerCase();
}

export function storedApiKey(home: string, host: string): string | undefined {
  return readConfig(home).auths?.[hostKey(host)]?.apikey;
}

export function saveApiKey(home: string, host: string, apikey: string): void {
  const cfg = readConfig(home);
  cfg.auths = { ...(cfg.auths ?? {}), [hostKey(host)]: { apikey } };
  writeConfig(home, cfg);
}

/** Removes a host's stored key; false when none was stored. */
export function removeApiKey(home: string, host: string): boolean {
  const cfg = readConfig(home);
  const k = hostKey(host);
  if (!cfg.auths?.[k]) return false;
  delete cfg.auths[k];
  writeConfig(home, cfg);
  return true;
}

export interface KeyPath {
  path: string;
  /** where the path came from when it is not the default one: "--key", "MF_KEY" or the config file */
  namedBy?: string;
}

/** The ssh key's path: `--key`, else MF_KEY or the config file's `key`, else `<home>/id_ed25519`. */
export function keyPathOf(keyFlag?: string): KeyPath {
  const { config } = cliContext();
  const path = resolve(keyFlag ?? config.key);
  if (keyFlag !== undefined) return { path, namedBy: "--key" };
  if (path === resolve(join(config.home, "id_ed25519"))) return { path };
  return { path, namedBy: process.env.MF_KEY ? "MF_KEY" : "the config file's key" };
}

/** A key named explicitly that does not exist: the error that says how to create it, if that was meant. */
export function missingKeyError(k: KeyPath): MfError {
  return new MfError("FILE_NOT_FOUND", `no key at ${k.path} (named by ${k.namedBy}): check the path, or create a key there with \`mf key --new --key ${k.path}\``);
}

/**
 * The authenticate hook for a command: stored API keys first, then the ssh key. A key named explicitly
 * must exist (checked now, before any request); the default one is used only if its file exists.
 */
export function cliAuthenticator(keyFlag?: string): Authenticate {
  const { config } = cliContext();
  const k = keyPathOf(keyFlag);
  if (k.namedBy && !existsSync(k.path)) throw missingKeyError(k);
  return keyAuthenticator({
    key: () => (existsSync(k.path) ? loadPrivateKey(k.path) : undefined),
    apiKey: (host) => storedApiKey(config.home, host),
  });
}

/** The key that signs models (`mf sign`, `mf push --sign`): the same one as for token requests, and it must exist. */
export function signingKey(keyFlag?: string): { key: SshKey; path: string } {
  const k = keyPathOf(keyFlag);
  if (k.namedBy && !existsSync(k.path)) throw missingKeyError(k);
  return { key: loadPrivateKey(k.path), path: k.path };
}
