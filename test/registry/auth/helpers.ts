/** Registries with key-based auth on 127.0.0.1:0, real ed25519 key pairs, and clients that use them. */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RegistryClient } from "../../../registry/client/index.js";
import { keyAuthenticator } from "../../../registry/client/auth.js";
import { ensurePrivateKey, publicKeyLine, type SshKey } from "../../../registry/protocol/keys.js";
import { AccessFile, createTokenAuth, FsDriver, type TokenAuthOptions } from "../../../registry/server/index.js";
import { startInProcess, tempDir, type InProcessRegistry } from "../peers.js";

export const SECRET = "test-secret-0123456789";

export interface Keyed {
  path: string;
  key: SshKey;
  line: string;
}

/** A fresh key pair written as OpenSSH files in `dir`. */
export function makeKey(dir: string, name: string): Keyed {
  const path = join(dir, `${name}_ed25519`);
  const { key } = ensurePrivateKey(path, `${name}@test`);
  return { path, key, line: publicKeyLine(key) };
}

export interface AuthRegistry extends InProcessRegistry {
  host: string;
  accessPath: string;
  access: AccessFile;
  /** rewrites the access file */
  setAccess(yaml: string): Promise<void>;
}

/**
 * A registry whose access file is `yaml`; `clock` (ms) is shared by the token endpoint and the checks. Its
 * public URL (what signatures are verified against) is the address it listens on, unless `publicUrl` says.
 */
export async function startAuthRegistry(yaml: string, opts: Partial<TokenAuthOptions> & { pollMs?: number; settleMs?: number } = {}): Promise<AuthRegistry> {
  const root = await tempDir("mf-auth-registry-");
  const accessPath = join(root, "access.yaml");
  await writeFile(accessPath, yaml);
  const access = await AccessFile.open(accessPath, { pollMs: opts.pollMs ?? 200, settleMs: opts.settleMs });
  const storage = new FsDriver({ root: join(root, "data") });
  let listening = "";
  const auth = createTokenAuth({ access, secret: SECRET, storage, publicUrl: () => listening, ...opts });
  const r = await startInProcess({ storage, auth, clock: opts.clock }, join(root, "data"));
  listening = r.base;
  return {
    ...r,
    host: new URL(r.base).host,
    accessPath,
    access,
    setAccess: (text) => writeFile(accessPath, text),
    close: async () => {
      access.close();
      await r.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A registry client that authenticates with `key` (or an API key, or nothing). */
export function clientWith(opts: { key?: SshKey; apiKey?: string }): RegistryClient {
  return new RegistryClient({ authenticate: keyAuthenticator({ key: opts.key, apiKey: () => opts.apiKey }), retries: 0 });
}

export async function keysDir(): Promise<string> {
  return tempDir("mf-auth-keys-");
}
