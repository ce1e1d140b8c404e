/**
 * In-process sharing of blob downloads: concurrent pulls that need the same blob wait on one download
 * and all see its progress. The download is aborted only when every waiter has gone.
 */

export type ProgressListener = (completed: number, total: number) => void;

interface Entry {
  promise: Promise<void>;
  listeners: Set<ProgressListener>;
  ctl: AbortController;
  last?: [number, number];
}

export class SharedDownloads {
  private readonly running = new Map<string, Entry>();

  /**
   * Joins the download under `key`, starting it with `start(signal, progress)` when none runs. Resolves
   * when it finishes; rejects with the caller's abort reason when the caller's signal fires first.
   */
  async join(
    key: string,
    start: (signal: AbortSignal, progress: ProgressListener) => Promise<void>,
    listener: ProgressListener,
    signal?: AbortSignal,
  ): Promise<void> {
    let e = this.running.get(key);
    if (!e) {
      const ctl = new AbortController();
      const entry: Entry = { listeners: new Set(), ctl, promise: Promise.resolve() };
      entry.promise = start(ctl.signal, (c, t) => {
        entry.last = [c, t];
        for (const l of entry.listeners) l(c, t);
      }).finally(() => {
        if (this.running.get(key) === entry) this.running.delete(key);
      });
      entry.promise.catch(() => {});
      this.running.set(key, entry);
      e = entry;
    }
    const entry = e;
    entry.listeners.add(listener);
    if (entry.last) listener(...entry.last);
    try {
      if (!signal) return await entry.promise;
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        entry.promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
      });
    } finally {
      entry.listeners.delete(listener);
      if (entry.listeners.size === 0 && this.running.get(key) === entry) {
        entry.ctl.abort(signal?.reason ?? new Error("no one is waiting for this download"));
        this.running.delete(key);
      }
    }
  }

  get size(): number {
    return this.running.size;
  }
}
