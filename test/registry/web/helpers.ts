/**
 * The web page's tests: a registry with the page on (in process on 127.0.0.1:0, over a filesystem or an
 * S3 driver, with or without an access file), models built from generated GGUFs and pushed by the real
 * registry client, and a JSON client for the page's API.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import type { LocalStore } from "../../../core/store.js";
import { AccessFile, createTokenAuth, createRegistryServer, FsDriver, type RegistryServer, type StorageDriver } from "../../../registry/server/index.js";
import { webPage } from "../../../registry/server/ui/index.js";
import { buildModel, newStore } from "../client/helpers.js";
import { clientWith, SECRET } from "../auth/helpers.js";
import { tempDir } from "../peers.js";

export interface WebRegistry {
  app: RegistryServer;
  storage: StorageDriver;
  base: string;
  host: string;
  dir: string;
  accessPath: string;
  setAccess(yaml: string): Promise<void>;
  /** waits until the access file in force satisfies `test` */
  waitForPolicy(test: (a: AccessFile) => boolean): Promise<void>;
  close(): Promise<void>;
}

/** A registry with the page; `yaml` turns on the access file (and key-based auth). */
export async function startWebRegistry(opts: { yaml?: string; storage?: StorageDriver; clock?: () => number } = {}): Promise<WebRegistry> {
  const dir = await tempDir("mf-web-");
  const storage = opts.storage ?? new FsDriver({ root: join(dir, "data") });
  const accessPath = join(dir, "access.yaml");
  let access: AccessFile | undefined;
  let listening = "";
  if (opts.yaml !== undefined) {
    await writeFile(accessPath, opts.yaml);
    access = await AccessFile.open(accessPath, { pollMs: 100, settleMs: 50 });
  }
  const auth = access ? createTokenAuth({ access, secret: SECRET, storage, publicUrl: () => listening, clock: opts.clock }) : undefined;
  const app = createRegistryServer({ storage, secret: SECRET, auth, clock: opts.clock, web: webPage({ access }) });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  listening = base;
  return {
    app, storage, base, host: new URL(base).host, dir, accessPath,
    setAccess: (yaml) => writeFile(accessPath, yaml),
    waitForPolicy: async (test) => {
      while (!test(access!)) await new Promise((r) => setTimeout(r, 25));
    },
    close: async () => {
      access?.close();
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Builds `name` from the tiny GGUF and pushes it with the registry client (an API key when given). */
export async function pushModel(store: LocalStore, dir: string, name: string, opts: { apiKey?: string; seed?: number } = {}): Promise<string> {
  const { digest } = await buildModel(store, dir, name, { seed: opts.seed });
  await clientWith({ apiKey: opts.apiKey }).push(store, name, { insecure: true });
  return digest;
}

export { newStore };

export interface JsonAnswer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Record<string, string | string[] | undefined>;
}

/** A request to the page's API (or any path), answered as parsed JSON. */
export async function api(base: string, path: string, init: { method?: "GET" | "POST"; cookie?: string; origin?: string; json?: unknown; headers?: Record<string, string> } = {}): Promise<JsonAnswer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.cookie) headers.cookie = init.cookie;
  if (init.origin) headers.origin = init.origin;
  if (init.json !== undefined) headers["content-type"] = "application/json";
  const r = await request(`${base}${path}`, { method: init.method ?? "GET", headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) });
  const text = await r.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.statusCode, body, headers: r.headers };
}

/** Signs in through the API and answers the cookie (name=value) the registry set. */
export async function signIn(base: string, key: string): Promise<string> {
  const r = await api(base, "/ui/api/session", { method: "POST", origin: base, json: { key } });
  if (r.status !== 200) throw new Error(`sign-in answered ${r.status}: ${JSON.stringify(r.body)}`);
  const set = [r.headers["set-cookie"]].flat()[0]!;
  return set.split(";")[0]!;
}
