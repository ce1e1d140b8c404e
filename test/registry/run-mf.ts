/** Runs the `mf` binary (as peers.ts's mfCommand starts it) to its end, for CLI tests of the registry. */
import { spawn } from "node:child_process";
import { mfCommand, REPO_ROOT } from "./peers.js";

export interface MfRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `mf ARGS` with `env` over a copy of this process's environment (MF_DEBUG and MF_KEY unset unless given). */
export function runMf(args: string[], env: Record<string, string> = {}, input = ""): Promise<MfRun> {
  return new Promise((resolve, reject) => {
    const e: Record<string, string | undefined> = { ...process.env };
    delete e.MF_DEBUG;
    delete e.MF_KEY;
    Object.assign(e, env);
    const p = spawn(process.execPath, [...mfCommand(), ...args], { cwd: REPO_ROOT, env: e, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input);
  });
}
