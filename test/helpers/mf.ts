/** Runs the real `mf` binary (dist/cli/main.js, built by `npm run build`, which `npm test` runs first). */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const MF_BIN = join(ROOT, "dist", "cli", "main.js");

export interface MfResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `mf ARGS` to its end. `command` is how node starts mf (default: the built binary); MF_DEBUG and MF_KEY
 * are not inherited from this process (a developer's own key never reaches a test), `env` may set them.
 */
export function mf(args: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string; command?: string[] } = {}): Promise<MfResult> {
  if (!opts.command && !existsSync(MF_BIN)) throw new Error(`${MF_BIN} is missing: run \`npm run build\` first (npm test does)`);
  return new Promise((res, rej) => {
    const env: Record<string, string | undefined> = { ...process.env };
    delete env.MF_DEBUG;
    delete env.MF_KEY;
    Object.assign(env, opts.env);
    const p = spawn(process.execPath, [...(opts.command ?? [MF_BIN]), ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", rej);
    p.on("close", (code) => res({ code, stdout, stderr }));
    p.stdin.end(opts.input ?? "");
  });
}

export interface ServingMf {
  /** `http://127.0.0.1:PORT` */
  base: string;
  proc: ChildProcess;
  /** what it printed so far (stdout and stderr: the JSON log lines included) */
  output(): string;
  /** SIGTERM, and waits for the exit */
  stop(): Promise<void>;
}

/** `mf serve ARGS` on 127.0.0.1, port 0 (MF_HOST), with `env` over this process's environment; resolves once it listens. */
export async function serveMf(args: string[], env: NodeJS.ProcessEnv): Promise<ServingMf> {
  if (!existsSync(MF_BIN)) throw new Error(`${MF_BIN} is missing: run \`npm run build\` first (npm test does)`);
  const proc = spawn(process.execPath, [MF_BIN, "serve", ...args], { cwd: ROOT, env: { ...env, MF_HOST: "127.0.0.1:0" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stderr!.on("data", (d) => (out += d));
  const base = await new Promise<string>((res, rej) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) res(m[1]!);
    });
    proc.on("exit", (code) => rej(new Error(`mf serve exited ${code}: ${out}`)));
  });
  return {
    base,
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await gone;
    },
  };
}
