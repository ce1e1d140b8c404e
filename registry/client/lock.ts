/**
 * A cross-process lock file beside a partial download: `O_EXCL` create holding the owner's pid. A lock
 * whose owner is gone (killed, even by SIGKILL) is taken over; a live owner is waited for.
 */
import { open, readFile, rm, stat } from "node:fs/promises";
import { hostname } from "node:os";

export interface Lock {
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

/**
 * Takes the lock at `path`, or returns null as soon as `done()` says the work is no longer needed (the
 * other process finished it). Polls while another live process holds it.
 */
export async function acquireLock(path: string, opts: { done: () => Promise<boolean>; signal?: AbortSignal; pollMs?: number }): Promise<Lock | null> {
  const me = `${process.pid} ${hostname()}`;
  for (;;) {
    if (await opts.done()) {
      // the work is finished; a lock its killed owner left behind is only litter now
      if (await isStale(path)) await rm(path, { force: true });
      return null;
    }
    try {
      const fh = await open(path, "wx");
      await fh.writeFile(me);
      await fh.close();
      return {
        release: async () => {
          const now = await readFile(path, "utf8").catch(() => "");
          if (now === me) await rm(path, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    if (await isStale(path)) {
      await rm(path, { force: true });
      continue;
    }
    await sleep(opts.pollMs ?? 200, opts.signal);
  }
}

/** Whether a live process holds the lock at `path`. */
export async function lockHeld(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined && !(await isStale(path));
}

/** Whether the lock at `path` exists and its owner is gone (or its create was cut before the write). */
async function isStale(path: string): Promise<boolean> {
  const st = await stat(path).catch(() => undefined);
  if (!st) return false;
  const owner = await readFile(path, "utf8").catch(() => "");
  if (owner === "") return Date.now() - st.mtimeMs > 5000;
  const [pidText, host] = owner.split(" ");
  const pid = Number(pidText);
  return host === hostname() && Number.isInteger(pid) && pid > 0 && !alive(pid);
}
