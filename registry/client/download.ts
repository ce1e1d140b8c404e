/**
 * One blob into the local store, resumably. The blob is fetched as `Range` parts (in parallel when it is
 * large) into `blobs/sha256-<hex>-mf-partial`, with its state (`…-mf-partial.json`: the parts and how
 * many bytes of each are on disk) beside it. State is written only after the bytes it counts, so after a
 * crash (even SIGKILL) a restart fetches exactly the bytes the state does not count. A follower hashes the
 * contiguous prefix while parts arrive; the blob is renamed into place only when the whole file matches
 * its digest, and a mismatch deletes the partial file and says so.
 */
import { open, readFile, rename, rm, writeFile, type FileHandle } from "node:fs/promises";
import { createHash } from "node:crypto";
import { setMaxListeners } from "node:events";
import { StoreError, RegistryError } from "../../core/errors.js";
import type { LocalStore } from "../../core/store.js";
import { header, httpStatusOf, isTransient, type RegistryHttp, redact } from "./http.js";
import { acquireLock, lockHeld } from "./lock.js";
import { writeAllv } from "../../core/fileio.js";

export interface Part {
  start: number;
  /** last byte, inclusive */
  end: number;
  /** bytes of this part on disk, from `start` */
  done: number;
}

export interface PartialState {
  digest: string;
  size: number;
  parts: Part[];
}

export interface DownloadOptions {
  http: RegistryHttp;
  store: LocalStore;
  /** the blob's registry URL, `…/v2/<name>/blobs/<digest>` */
  url: string;
  digest: string;
  size: number;
  /** bytes per part (default: size/16, at least 32 MiB) */
  partSize?: number;
  /** parts fetched at once (default 8) */
  parallel?: number;
  /** write the state file after this many new bytes of a part (default 4 MiB) */
  stateEveryBytes?: number;
  signal?: AbortSignal;
  onProgress?: (completed: number, total: number) => void;
}

const WRITE_BATCH = 1 << 20;
const MiB = 1024 * 1024;

export function planParts(size: number, partSize?: number): Part[] {
  const ps = Math.max(1, partSize ?? Math.max(32 * MiB, Math.ceil(size / 16)));
  const parts: Part[] = [];
  for (let start = 0; start < size; start += ps) parts.push({ start, end: Math.min(size, start + ps) - 1, done: 0 });
  return parts;
}

async function loadState(path: string, digest: string, size: number): Promise<PartialState | undefined> {
  try {
    const s = JSON.parse(await readFile(path, "utf8")) as PartialState;
    if (s.digest !== digest || s.size !== size || !Array.isArray(s.parts)) return undefined;
    let expect = 0;
    for (const p of s.parts) {
      if (p.start !== expect || p.end < p.start || p.done < 0 || p.done > p.end - p.start + 1) return undefined;
      expect = p.end + 1;
    }
    return expect === size ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * For a blob already in the store: unless a live process still holds its download lock (it is tidying
 * up), the partial files beside it are litter of a pull killed between its commit and its clean-up.
 */
export async function clearLeftovers(store: LocalStore, digest: string): Promise<void> {
  const partial = store.partialPath(digest);
  if (await lockHeld(`${partial}.lock`)) return;
  await Promise.all([partial, `${partial}.json`, `${partial}.json.tmp`, `${partial}.lock`].map((f) => rm(f, { force: true })));
}

/** Downloads the blob unless the store has it (or another process finished it meanwhile). */
export async function downloadBlob(o: DownloadOptions): Promise<void> {
  const { store, digest } = o;
  const partial = store.partialPath(digest);
  if (!(await store.hasBlob(digest))) await store.tempPath(); // makes blobs/
  const lock = await acquireLock(`${partial}.lock`, { done: () => store.hasBlob(digest), signal: o.signal });
  if (!lock) {
    await clearLeftovers(store, digest);
    return;
  }
  try {
    await fetchLocked(o, partial);
  } finally {
    await lock.release();
  }
}

async function fetchLocked(o: DownloadOptions, partial: string): Promise<void> {
  const { store, digest, size } = o;
  const statePath = `${partial}.json`;
  let state = await loadState(statePath, digest, size);
  let fh: FileHandle;
  if (state) {
    try {
      fh = await open(partial, "r+");
      if ((await fh.stat()).size !== size) {
        await fh.close();
        state = undefined;
      }
    } catch {
      state = undefined;
    }
  }
  if (!state) {
    state = { digest, size, parts: planParts(size, o.partSize) };
    fh = await open(partial, "w+");
    await fh.truncate(size);
    await saveState(statePath, state);
  }
  const st = state;
  let completed = st.parts.reduce((a, p) => a + p.done, 0);
  o.onProgress?.(completed, size);

  // state writes: serialized, always of the latest counts
  let saving = Promise.resolve();
  const save = () => (saving = saving.then(() => saveState(statePath, st)));

  // the hash follower is woken whenever the contiguous prefix grows
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const frontier = (): number => {
    for (const p of st.parts) if (p.done < p.end - p.start + 1) return p.start + p.done;
    return size;
  };
  const ctl = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, ctl.signal]) : ctl.signal;
  // every part's request listens on it (undici adds two listeners per request): not a leak
  setMaxListeners(4 * (o.parallel ?? 8) + 8, signal);

  const follower = (async () => {
    const h = createHash("sha256");
    const buf = Buffer.allocUnsafe(4 * MiB);
    let hashed = 0;
    while (hashed < size) {
      const f = frontier();
      if (f <= hashed) {
        await new Promise<void>((r) => (wake = r));
        if (signal.aborted) throw signal.reason;
        continue;
      }
      while (hashed < f) {
        const n = Math.min(buf.length, f - hashed);
        const { bytesRead } = await fh!.read(buf, 0, n, hashed);
        if (bytesRead <= 0) throw new StoreError("STORE_CORRUPT", `short read of ${partial}`);
        h.update(buf.subarray(0, bytesRead));
        hashed += bytesRead;
      }
    }
    return `sha256:${h.digest("hex")}`;
  })();
  follower.catch(() => {});

  let resolved = o.url;
  const every = o.stateEveryBytes ?? 4 * MiB;
  const runPart = async (p: Part): Promise<void> => {
    let attempt = 0;
    let sinceSave = 0;
    while (p.done < p.end - p.start + 1) {
      const from = p.start + p.done;
      const before = p.done;
      try {
        const res = await o.http.send({
          method: "GET",
          url: resolved,
          headers: { range: `bytes=${from}-${p.end}`, "accept-encoding": "identity" },
          signal,
          ok: (s) => s === 200 || s === 206,
        });
        if (res.url !== resolved && res.url !== o.url) resolved = res.url;
        let skip = 0;
        if (res.status === 206) {
          const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res, "content-range") ?? "");
          if (!cr || Number(cr[1]) !== from || (cr[3] !== "*" && Number(cr[3]) !== size)) {
            res.body.destroy();
            throw new RegistryError("UNKNOWN", `registry answered Content-Range "${header(res, "content-range")}" for bytes=${from}-${p.end} of ${digest}`);
          }
        } else {
          skip = from; // a registry that ignores Range: skip to our offset
        }
        let pos = from;
        const stop = p.end + 1;
        // Chunks are written in batches of ~1 MiB with one writev (not one write per socket read); only
        // bytes written count, so a cut leaves the state exact.
        let batch: Buffer[] = [];
        let batchBytes = 0;
        const flush = async () => {
          if (batchBytes === 0) return;
          const n = batchBytes;
          await writeAllv(fh!, batch, pos);
          batch = [];
          batchBytes = 0;
          pos += n;
          p.done += n;
          completed += n;
          sinceSave += n;
          if (sinceSave >= every) {
            sinceSave = 0;
            void save();
          }
          notify();
          o.onProgress?.(completed, size);
        };
        try {
          for await (const c of res.body) {
            let chunk = c as Buffer;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            const end = pos + batchBytes;
            if (end + chunk.length > stop) chunk = chunk.subarray(0, stop - end);
            if (chunk.length === 0) break;
            batch.push(chunk);
            batchBytes += chunk.length;
            if (batchBytes >= WRITE_BATCH) await flush();
            if (pos + batchBytes >= stop) break;
          }
        } finally {
          await flush();
        }
        if (pos >= stop) res.body.destroy();
        if (p.done < p.end - p.start + 1) throw Object.assign(new Error(`body of ${redact(o.url)} ended early`), { code: "UND_ERR_SOCKET" });
      } catch (e) {
        if (signal.aborted) throw e;
        const status = httpStatusOf(e);
        if (resolved !== o.url && (status === 401 || status === 403 || status === 404)) {
          resolved = o.url; // an expired signed URL: ask the registry again
          continue;
        }
        if (p.done > before) attempt = 0;
        if (!isTransient(e) || attempt >= o.http.retries) throw e;
        await o.http.backoff(++attempt, signal);
      }
    }
    await save();
  };

  /** the partial file is complete (then committed or deleted): no state to keep */
  let settled = false;
  try {
    await runParallel(st.parts.filter((p) => p.done < p.end - p.start + 1), o.parallel ?? 8, (p) =>
      runPart(p).catch((e) => {
        ctl.abort(e);
        throw e;
      }));
    await saving;
    notify();
    const got = await follower;
    await fh!.close();
    settled = true;
    if (got !== digest) {
      await rm(partial, { force: true });
      await rm(statePath, { force: true });
      throw new StoreError("DIGEST_INVALID", `downloaded blob does not match its digest (expected ${digest}, got ${got}); the download was deleted, pull again`);
    }
    await store.commitTemp(partial, digest);
    await rm(statePath, { force: true });
  } catch (e) {
    ctl.abort(e);
    notify();
    await saving.catch(() => {});
    // Every part has stopped and counts only bytes already written: an interrupted pull (Ctrl-C, a
    // failure) resumes from here rather than from the last periodic save.
    if (!settled) await saveState(statePath, st).catch(() => {});
    await fh!.close().catch(() => {});
    throw e;
  }
}

async function saveState(path: string, s: PartialState): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(s));
  await rename(tmp, path);
}

/** Runs `fn` over items with at most `n` at once; the first failure stops new starts and is thrown. */
export async function runParallel<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  let hasFailed = false;
  const worker = async () => {
    while (!hasFailed && next < items.length) {
      const x = items[next++]!;
      try {
        await fn(x);
      } catch (e) {
        if (!hasFailed) {
          hasFailed = true;
          failed = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (hasFailed) throw failed;
}
