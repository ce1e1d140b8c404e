/**
 * Live registries for tests and benchmarks: `mf registry serve` spawned as a real process (through tsx,
 * no build step), the in-process server, and Debian's `docker-registry` (CNCF distribution 2.8).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createRegistryServer, FsDriver, type RegistryServer, type RegistryServerOptions } from "../../registry/server/index.js";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const DOCKER_REGISTRY = "/usr/bin/docker-registry";

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface InProcessRegistry {
  app: RegistryServer;
  base: string;
  root: string;
  close(): Promise<void>;
}

export async function startInProcess(options: Partial<RegistryServerOptions> = {}, root?: string): Promise<InProcessRegistry> {
  const dir = root ?? (await tempDir("mf-registry-"));
  const app = createRegistryServer({ storage: new FsDriver({ root: dir }), secret: "test-secret-0123456789", ...options });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return {
    app, base, root: dir,
    close: async () => {
      await app.close();
      if (!root) await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface SpawnedRegistry {
  child: ChildProcess;
  base: string;
  output(): string;
  /** resolves with the exit code (or signal name) */
  exited: Promise<number | string>;
}

/** How the `mf` binary is started: cli/main.ts through tsx, or the entry named by MF_TEST_CLI (dist/cli/main.js under `npm test`: test/run.mjs --built). */
export function mfCommand(): string[] {
  const entry = process.env.MF_TEST_CLI;
  if (!entry) return ["--import", "tsx", "cli/main.ts"];
  return entry.endsWith(".ts") ? ["--import", "tsx", entry] : [entry];
}

export interface SpawnOptions {
  /** the CLI entry to run (e.g. dist/cli/main.js); default: mfCommand() */
  entry?: string;
  /** extra environment for the process */
  env?: Record<string, string>;
}

/** Spawns `mf registry serve --addr 127.0.0.1:0 ...` and waits for its "listening on" line. */
export async function spawnMfRegistry(root: string, args: string[] = [], timeoutMs = 30_000, options: SpawnOptions = {}): Promise<SpawnedRegistry> {
  const command = options.entry ? [options.entry] : mfCommand();
  const child = spawn(process.execPath, [...command, "registry", "serve", "--root", root, "--addr", "127.0.0.1:0", ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env },
  });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((r) => child.once("exit", (code, sig) => r(code ?? sig ?? -1)));
  const base = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`mf registry serve did not start:\n${out}`)), timeoutMs);
    const check = () => {
      const m = /listening on (https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    child.stdout!.on("data", check);
    exited.then(() => {
      clearTimeout(timer);
      rej(new Error(`mf registry serve exited early:\n${out}`));
    });
  });
  return { child, base, output: () => out, exited };
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

export interface DistributionRegistry {
  base: string;
  child: ChildProcess;
  root: string;
  close(): Promise<void>;
}

/**
 * Starts Debian's docker-registry on a free port in a temp dir; null when it is not installed. `extraConfig`
 * adds lines to its config (an `auth:` section); it is up when `GET /v2/` answers `readyStatus` (401 with auth).
 */
export async function startDistribution(opts: { extraConfig?: string[]; readyStatus?: number } = {}): Promise<DistributionRegistry | null> {
  if (!existsSync(DOCKER_REGISTRY)) return null;
  const root = await tempDir("mf-distribution-");
  const port = await freePort();
  const config = join(root, "config.yml");
  await writeFile(config, [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${join(root, "data")}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    ...(opts.extraConfig ?? []),
    "",
  ].join("\n"));
  const child = spawn(DOCKER_REGISTRY, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const r = await fetch(`${base}/v2/`);
      await r.arrayBuffer();
      if (r.status === (opts.readyStatus ?? 200)) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`docker-registry did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base, child, root,
    close: async () => {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A throwaway self-signed certificate for 127.0.0.1 (openssl), as PEM files in `dir`. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const gen = spawnSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
  ]);
  if (gen.status !== 0) throw new Error(`openssl could not make a certificate: ${gen.stderr.toString()}`);
  return { cert, key };
}

/** Spawned registries and temp dirs a test file collects; `cleanup()` (in its `after`) stops and removes them. */
export class Cleanup {
  readonly registries: SpawnedRegistry[] = [];
  readonly dirs: string[] = [];

  async tempDir(prefix: string): Promise<string> {
    const d = await tempDir(prefix);
    this.dirs.push(d);
    return d;
  }

  async serve(root: string, args: string[] = [], options: SpawnOptions = {}): Promise<SpawnedRegistry> {
    const r = await spawnMfRegistry(root, args, 30_000, options);
    this.registries.push(r);
    return r;
  }

  async cleanup(): Promise<void> {
    for (const r of this.registries) {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGTERM");
      await r.exited;
    }
    for (const d of this.dirs) await rm(d, { recursive: true, force: true });
  }
}
