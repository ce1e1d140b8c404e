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

/** A process to its end, with `input` on its stdin and what it wrote. */
export function runProcess(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {}): Promise<MfResult> {
  return new Promise((res, rej) => {
    const p = spawn(command, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", rej);
    p.on("close", (code) => res({ code, stdout, stderr }));
    p.stdin.end(opts.input ?? "");
  });
}

/** This process's environment for mf, without MF_DEBUG and MF_KEY (a developer's own key never reaches a test), and `env` over it. */
export function mfEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.MF_DEBUG;
  delete e.MF_KEY;
  return Object.assign(e, env);
}

function needBinary(): void {
  if (!existsSync(MF_BIN)) throw new Error(`${MF_BIN} is missing: run \`npm run build\` first (npm test does)`);
}

/**
 * `mf ARGS` to its end. `command` is how node starts mf (default: the built binary); MF_DEBUG and MF_KEY
 * are not inherited from this process, `env` may set them.
 */
export function mf(args: string[], opts: { env?: Record<string, string>; cwd?: string; input?: string; command?: string[] } = {}): Promise<MfResult> {
  if (!opts.command) needBinary();
  return runProcess(process.execPath, [...(opts.command ?? [MF_BIN]), ...args], { env: mfEnv(opts.env), cwd: opts.cwd, input: opts.input });
}

export interface MfServe {
  child: ChildProcess;
  /** `127.0.0.1:PORT` */
  host: string;
  /** what it has written so far (stdout and stderr) */
  output(): string;
  /** SIGTERM, and wait for it to end */
  stop(): Promise<void>;
}

/** `mf serve ARGS` on 127.0.0.1, a free port, over this process's environment without MF_DEBUG and MF_KEY; resolves once it listens. */
export async function startMfServe(args: string[], env: Record<string, string>): Promise<MfServe> {
  const s = await serveMf(args, mfEnv(env));
  return { child: s.proc, host: s.base.slice("http://".length), output: s.output, stop: s.stop };
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
