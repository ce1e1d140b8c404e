/**
 * The access file, kept current without a restart: `fs.watch` on its directory (editors replace files by
 * renaming) plus a periodic stat, for file systems where watching says nothing (network mounts, some
 * containers). A change is read only once the file's inode, size and mtime have stayed the same for
 * `settleMs` (an in-place rewrite, `cat new > access.yaml`, first truncates the file, then writes it in
 * pieces), and the read counts only when the file did not change meanwhile. A file that has no document
 * at all (empty, blank, comments only) never replaces a policy that grants something, and a file that does
 * not parse keeps the last good policy; both are reported once with what stays in force.
 */
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { MfError } from "../../core/errors.js";
import { AccessPolicy } from "./access.js";

export interface AccessSource {
  current(): AccessPolicy;
}

export interface AccessFileOptions {
  /** how often the file is stat'ed (default 2 s; 0: never) */
  pollMs?: number;
  /** how long a changed file must keep the same size and mtime before it is read (default 300 ms) */
  settleMs?: number;
  /** called after a change was loaded */
  onReload?: (policy: AccessPolicy) => void;
  /** called when a changed file is not loaded (unreadable, invalid, or empty); `kept` stays in force */
  onError?: (error: Error, kept: AccessPolicy) => void;
}

/** What a stat says about a version of the file; equal stamps, same contents (as far as a stat can tell). */
function stampOf(st: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** `2 keys, 1 API key, anonymous rules`: what a policy grants, for messages. */
export function describePolicy(p: AccessPolicy): string {
  const n = (k: number, one: string) => `${k} ${one}${k === 1 ? "" : "s"}`;
  return `${n(p.keys.length, "key")}, ${n(p.apiKeys.length, "API key")}${p.anonymous.rules.length ? ", anonymous rules" : ""}`;
}

export class AccessFile implements AccessSource {
  readonly path: string;
  private policy: AccessPolicy;
  /** the stamp of the version loaded or last reported, so each version is handled once */
  private stamp: string;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private forced = false;
  private closed = false;
  private readonly settleMs: number;
  private readonly opts: AccessFileOptions;

  private constructor(path: string, policy: AccessPolicy, stamp: string, opts: AccessFileOptions) {
    this.path = path;
    this.policy = policy;
    this.stamp = stamp;
    this.opts = opts;
    this.settleMs = opts.settleMs ?? 300;
  }

  /** Loads the file (a missing or invalid file is an error now) and starts watching it. */
  static async open(path: string, opts: AccessFileOptions = {}): Promise<AccessFile> {
    let text: string;
    let stamp: string;
    try {
      stamp = stampOf(await stat(path));
      text = await readFile(path, "utf8");
    } catch (e) {
      throw new MfError("FILE_NOT_FOUND", `cannot read access file ${path}: ${(e as Error).message}`);
    }
    const f = new AccessFile(path, AccessPolicy.parse(text, path), stamp, opts);
    f.start();
    return f;
  }

  current(): AccessPolicy {
    return this.policy;
  }

  /**
   * Re-reads the file when its inode, size or mtime changed (or always, with `force`), once it has
   * settled. Calls made while a check runs are folded into one more check after it.
   */
  reload(force = false): Promise<void> {
    if (force) this.forced = true;
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          const forced = this.forced;
          this.forced = false;
          await this.check(forced);
        } while ((this.again || this.forced) && !this.closed);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /** The file's stamp, or null when it is missing (mid-rename: the next event or poll sees it). */
  private async currentStamp(): Promise<string | null> {
    try {
      return stampOf(await stat(this.path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  private async check(force: boolean): Promise<void> {
    try {
      let seen = await this.currentStamp();
      if (seen === null || (!force && seen === this.stamp)) return;
      // wait until a whole settle period passes without a change
      for (;;) {
        await sleep(this.settleMs, undefined, { ref: false });
        if (this.closed) return;
        const now = await this.currentStamp();
        if (now === null) return;
        if (now === seen) break;
        seen = now;
      }
      const text = await readFile(this.path, "utf8");
      if ((await this.currentStamp()) !== seen) {
        this.again = true; // changed while being read: settle again
        return;
      }
      this.stamp = seen; // this version is handled now, whatever follows: reported once, not on every poll
      let next: AccessPolicy;
      try {
        next = AccessPolicy.parse(text, this.path);
      } catch (e) {
        this.opts.onError?.(e as Error, this.policy);
        return;
      }
      if (next.blank && !this.policy.empty) {
        this.opts.onError?.(new MfError("BAD_REQUEST", `${this.path} is empty; an empty file never replaces an access policy that grants something`), this.policy);
        return;
      }
      this.policy = next;
      this.opts.onReload?.(next);
    } catch (e) {
      this.opts.onError?.(new MfError("FILE_NOT_FOUND", `cannot read access file ${this.path}: ${(e as Error).message}`), this.policy);
    }
  }

  private start(): void {
    try {
      const name = basename(this.path);
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (!file || file.toString() === name) void this.reload();
      });
      this.watcher.on("error", () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined; // polling alone
    }
    const every = this.opts.pollMs ?? 2000;
    if (every > 0) {
      this.timer = setInterval(() => void this.reload(), every);
      this.timer.unref();
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }
}

/** A fixed policy (tests, embedding). */
export function staticAccess(policy: AccessPolicy | string): AccessSource {
  const p = typeof policy === "string" ? AccessPolicy.parse(policy) : policy;
  return { current: () => p };
}
