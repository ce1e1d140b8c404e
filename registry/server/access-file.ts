/**
 * The access file, kept current without a restart: `fs.watch` on its directory (editors replace files by
 * renaming) plus a periodic stat, for file systems where watching says nothing (network mounts, some
 * containers). A file that stops parsing keeps the last good policy in force and reports the error.
 */
import { watch, type FSWatcher } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { MfError } from "../../core/errors.js";
import { AccessPolicy } from "./access.js";

export interface AccessSource {
  current(): AccessPolicy;
}

export interface AccessFileOptions {
  /** how often the file is stat'ed (default 2 s; 0: never) */
  pollMs?: number;
  /** called after a change was loaded */
  onReload?: (policy: AccessPolicy) => void;
  /** called when a changed file cannot be read or parsed (the previous policy stays) */
  onError?: (error: Error) => void;
}

export class AccessFile implements AccessSource {
  readonly path: string;
  private policy: AccessPolicy;
  private stamp: string;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private readonly opts: AccessFileOptions;

  private constructor(path: string, policy: AccessPolicy, stamp: string, opts: AccessFileOptions) {
    this.path = path;
    this.policy = policy;
    this.stamp = stamp;
    this.opts = opts;
  }

  /** Loads the file (a missing or invalid file is an error now) and starts watching it. */
  static async open(path: string, opts: AccessFileOptions = {}): Promise<AccessFile> {
    const { policy, stamp } = await AccessFile.read(path);
    const f = new AccessFile(path, policy, stamp, opts);
    f.start();
    return f;
  }

  private static async read(path: string): Promise<{ policy: AccessPolicy; stamp: string }> {
    let text: string;
    let stampText: string;
    try {
      const st = await stat(path);
      stampText = `${st.ino}:${st.size}:${st.mtimeMs}`;
      text = await readFile(path, "utf8");
    } catch (e) {
      throw new MfError("FILE_NOT_FOUND", `cannot read access file ${path}: ${(e as Error).message}`);
    }
    return { policy: AccessPolicy.parse(text, path), stamp: stampText };
  }

  current(): AccessPolicy {
    return this.policy;
  }

  /** Re-reads the file when its inode, size or mtime changed (or always, with `force`). */
  reload(force = false): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      let st;
      try {
        st = await stat(this.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return; // mid-rename; the next event or poll sees it
        this.opts.onError?.(e as Error);
        return;
      }
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (!force && stamp === this.stamp) return;
      try {
        const r = await AccessFile.read(this.path);
        this.policy = r.policy;
        this.stamp = r.stamp;
        this.opts.onReload?.(r.policy);
      } catch (e) {
        this.stamp = stamp; // report a broken file once, not on every poll
        this.opts.onError?.(e as Error);
      }
    });
    return this.reloading;
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
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }
}

/** A fixed policy (tests, embedding). */
export function staticAccess(policy: AccessPolicy | string): AccessSource {
  const p = typeof policy === "string" ? AccessPolicy.parse(policy) : policy;
  return { current: () => p };
}
