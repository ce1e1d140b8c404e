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
    if (await opts.done()) return null;
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
    const owner = await readFile(path, "utf8").catch(() => "");
    const [pidText, host] = owner.split(" ");
    const pid = Number(pidText);
    // an empty file is a create cut before its write: stale once it is a few seconds old
    const age = owner === "" ? Date.now() - ((await stat(path).catch(() => undefined))?.mtimeMs ?? Date.now()) : 0;
    const stale = owner === "" ? age > 5000 : host === hostname() && Number.isInteger(pid) && pid > 0 && !alive(pid);
    if (stale) {
      await rm(path, { force: true });
      continue;
    }
    await sleep(opts.pollMs ?? 200, opts.signal);
  }
}
