/**
 * A real pseudo-terminal for tests of interactive commands: a command in a detached tmux session on a
 * private server socket (`tmux -L`), driven with `send-keys` and read back with `capture-pane`. When the
 * command ends, the pane shows `[exited N]` and stays, so a test reads the exit status off the screen.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";

const run = promisify(execFile);

export const TMUX_MISSING = spawnSync("tmux", ["-V"]).status === 0 ? undefined : "tmux is not installed (tmux -V failed)";

export class Terminal {
  private constructor(private readonly socket: string) {}

  /** Starts `argv` (with `env` added) in a `width`×`height` terminal. */
  static async start(argv: string[], o: { env?: Record<string, string>; cwd?: string; width?: number; height?: number } = {}): Promise<Terminal> {
    const t = new Terminal(`mf-test-${process.pid}-${randomBytes(4).toString("hex")}`);
    const env = Object.entries(o.env ?? {}).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
    // sh prints how the command ended and keeps the pane open to show it
    const script = `"$@"; echo "[exited $?]"; exec sleep 3600`;
    await t.tmux(
      "new-session", "-d", "-s", "t", "-x", String(o.width ?? 120), "-y", String(o.height ?? 40), ...(o.cwd ? ["-c", o.cwd] : []), ...env,
      "--", "sh", "-c", script, "sh", ...argv,
    );
    return t;
  }

  private async tmux(...args: string[]): Promise<string> {
    const { stdout } = await run("tmux", ["-L", this.socket, "-f", "/dev/null", ...args], { env: { ...process.env, TERM: "xterm-256color" } });
    return stdout;
  }

  /** Keys by tmux's names (`Enter`, `C-c`, `Up`, `Left`, `BSpace`, …). */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux("send-keys", "-t", "t", ...keys);
  }

  /** Literal text, as typed. */
  async type(text: string): Promise<void> {
    await this.tmux("send-keys", "-t", "t", "-l", text);
  }

  /** The screen with the lines scrolled off it, trailing blanks trimmed from every line and blank lines from the end. */
  async screen(): Promise<string> {
    const text = await this.tmux("capture-pane", "-p", "-S", "-", "-t", "t");
    return text.split("\n").map((l) => l.trimEnd()).join("\n").trimEnd();
  }

  /** Polls the screen until `ok` holds; fails with the last screen after `ms` (a deadline, not a measurement). */
  async waitFor(ok: (screen: string) => boolean, what: string, ms = 60_000): Promise<string> {
    const end = Date.now() + ms;
    for (;;) {
      const s = await this.screen();
      if (ok(s)) return s;
      if (Date.now() > end) throw new Error(`terminal: no ${what} within ${ms} ms; the screen:\n${s}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Ends the command and the tmux server. */
  async kill(): Promise<void> {
    await this.tmux("kill-server").catch(() => {});
  }
}
