/**
 * The client's credentials: API keys stored per registry host by `mf login` in `<home>/config.json`
 * (0600, `{"auths": {"host:port": {"apikey": "…"}}}`), and the ssh key (`--key` / MF_KEY, default
 * `<home>/id_ed25519`) that signs token requests when no API key is stored. A missing key file means
 * anonymous access; an unusable one is a clear error.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { MfError } from "../core/errors.js";
import { keyAuthenticator } from "../registry/client/auth.js";
import type { Authenticate } from "../registry/client/index.js";
import { loadPrivateKey } from "../registry/protocol/keys.js";
import { cliContext } from "./context.js";

interface ConfigFile {
  auths?: Record<string, { apikey?: string }>;
  [k: string]: unknown;
}

export function configPath(home: string): string {
  return join(home, "config.json");
}

function readConfig(home: string): ConfigFile {
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

/** The authenticate hook for a command: stored API keys first, then the ssh key if its file exists. */
export function cliAuthenticator(keyFlag?: string): Authenticate {
  const { config } = cliContext();
  const keyPath = keyFlag ?? config.key;
  return keyAuthenticator({
    key: () => (existsSync(keyPath) ? loadPrivateKey(keyPath) : undefined),
    apiKey: (host) => storedApiKey(config.home, host),
  });
}
