/**
 * Upload sessions as data in storage (architecture principle 7). A session is `uploads/<uuid>/data` plus
 * `state.json` ({repository, offset, startedAt, updatedAt[, sha256]}), rewritten after every request. The
 * persisted offset is the truth: bytes past it (a PATCH cut by a crash) are discarded when the session is
 * next written. The running hash follows exactly the bytes the driver reports written, so the closing PUT
 * never re-reads the blob. Where the stored bytes can be read back (filesystem) the hash is node's, in
 * memory, and a session whose hash is not in memory (after a restart, or on another replica) re-hashes
 * its stored prefix once. Where they cannot (S3: parts of an open multipart upload; the driver's
 * `sealedWrites`), the hash is the resumable SHA-256 of storage/sha256-state.ts (on a worker thread:
 * storage/sha256-worker.ts) and its state is saved in state.json with the offset it covers, so any
 * replica continues where the last request stopped.
 */
import { randomUUID } from "node:crypto";
import { createHasher, type ParsedDigest } from "../../core/digest.js";
import { RegistryError, StoreError } from "../../core/errors.js";
import type { BlobInfo, RepoStore } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import type { Sha256State } from "./storage/sha256-state.js";
import { ThreadedSha256 } from "./storage/sha256-worker.js";
import { isUuid } from "./validate.js";

export interface UploadState {
  repository: string;
  offset: number;
  startedAt: number;
  updatedAt: number;
  /** the SHA-256 state of the first `offset` bytes (drivers with sealed writes) */
  sha256?: Sha256State;
}

interface RunningHash {
  update(chunk: Uint8Array): unknown;
  hex(): string | Promise<string>;
  save?(): Promise<Sha256State>;
  close?(): void;
}

interface LiveHash {
  hash: RunningHash;
  offset: number;
}

function nodeSha256(): RunningHash {
  const h = createHasher("sha256");
  return { update: (c) => h.update(c), hex: () => h.copy().digest("hex") };
}

export interface UploadSessionsOptions {
  storage: StorageDriver;
  store: RepoStore;
  clock: () => number;
  /** a session untouched for this long is gone */
  expiryMs: number;
}

/** What a PATCH or PUT asks to write. */
export interface AppendRequest {
  source: AsyncIterable<Uint8Array>;
  /** the `Content-Range` start when given: must equal the stored size */
  start?: number;
  signal?: AbortSignal;
}

const EMPTY: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

export class UploadSessions {
  private readonly storage: StorageDriver;
  private readonly store: RepoStore;
  private readonly clock: () => number;
  private readonly expiryMs: number;
  private readonly live = new Map<string, LiveHash>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(options: UploadSessionsOptions) {
    this.storage = options.storage;
    this.store = options.store;
    this.clock = options.clock;
    this.expiryMs = options.expiryMs;
  }

  async create(repository: string): Promise<{ uuid: string; state: UploadState }> {
    const uuid = randomUUID();
    const now = this.clock();
    const state: UploadState = { repository, offset: 0, startedAt: now, updatedAt: now };
    const live: LiveHash = { hash: this.newHash(), offset: 0 };
    this.setLive(uuid, live);
    await this.storage.putContent(L.uploadDataPath(uuid), Buffer.alloc(0));
    await this.persist(uuid, state, live);
    return { uuid, state };
  }

  /** The session's persisted state; BLOB_UPLOAD_UNKNOWN when absent, expired or of another repository. */
  async status(uuid: string, repository: string): Promise<UploadState> {
    return this.load(uuid, repository);
  }

  /** Appends a chunk (PATCH). Throws RANGE_INVALID (detail.offset) when `start` is not the stored size. */
  append(uuid: string, repository: string, req: AppendRequest): Promise<UploadState> {
    return this.exclusive(uuid, async () => this.appendLocked(uuid, await this.load(uuid, repository), req));
  }

  /** Closes the session (PUT): optional last chunk, digest check, then the blob appears by a move. */
  finish(uuid: string, repository: string, digest: ParsedDigest, req?: AppendRequest): Promise<BlobInfo> {
    return this.exclusive(uuid, async () => {
      let state = await this.load(uuid, repository);
      if (req) state = await this.appendLocked(uuid, state, req);
      // Bytes past the persisted offset are not part of the blob.
      const stored = await this.storage.stat(L.uploadDataPath(uuid));
      if (stored && stored.size > state.offset) await this.storage.writeAt(L.uploadDataPath(uuid), state.offset, EMPTY);
      let data = L.uploadDataPath(uuid);
      if (digest.algorithm !== "sha256" && this.storage.sealedWrites) {
        // no resumable state for other algorithms: finish the write first, then hash it by reading
        await this.storage.move(data, L.uploadSealedPath(uuid));
        data = L.uploadSealedPath(uuid);
      }
      const actual = digest.algorithm === "sha256"
        ? await (await this.liveHash(uuid, state)).hash.hex()
        : await this.hashStored(data, state.offset, digest.algorithm);
      if (actual !== digest.hex) {
        await this.drop(uuid);
        throw new RegistryError("DIGEST_INVALID", `digest mismatch: content is ${digest.algorithm}:${actual}`, {
          detail: { expected: `${digest.algorithm}:${digest.hex}`, actual: `${digest.algorithm}:${actual}` },
        });
      }
      if (!(await this.store.touchBlob(digest))) {
        await this.storage.move(data, L.blobPath(digest));
        await this.store.touchBlob(digest);
      }
      await this.store.linkBlob(repository, digest);
      await this.drop(uuid);
      return { size: state.offset, modifiedMs: this.clock() };
    });
  }

  cancel(uuid: string, repository: string): Promise<void> {
    return this.exclusive(uuid, async () => {
      await this.load(uuid, repository);
      await this.drop(uuid);
    });
  }

  /** Every session id present in storage (GC never touches their bytes). */
  async ids(): Promise<string[]> {
    return (await this.storage.list(L.UPLOADS_ROOT)).filter(isUuid);
  }

  /** Removes expired sessions (and debris without a state) not in use right now. Returns how many. */
  async sweep(): Promise<number> {
    let removed = 0;
    const now = this.clock();
    for (const name of await this.storage.list(L.UPLOADS_ROOT)) {
      if (this.locks.has(name)) continue;
      const state = isUuid(name) ? await this.readState(name).catch(() => null) : null;
      let last = state?.updatedAt;
      // a request still writing (here or on another replica) keeps the data's modification time fresh
      if (state) last = Math.max(last ?? 0, (await this.storage.stat(L.uploadDataPath(name)))?.modifiedMs ?? 0);
      if (last === undefined) last = (await this.storage.stat(`${L.UPLOADS_ROOT}/${name}`))?.modifiedMs ?? 0;
      if (now - last > this.expiryMs) {
        await this.drop(name);
        removed++;
      }
    }
    return removed;
  }

  /** Resolves when every write in progress has persisted its offset (server shutdown). */
  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  // ---- internals ----

  private async appendLocked(uuid: string, state: UploadState, req: AppendRequest): Promise<UploadState> {
    if (req.start !== undefined && req.start !== state.offset) {
      throw new RegistryError("RANGE_INVALID", `chunk starts at ${req.start} but the upload holds ${state.offset} bytes`, {
        detail: { offset: state.offset },
      });
    }
    const live = await this.liveHash(uuid, state);
    const start = state.offset;
    let written = 0;
    try {
      await this.storage.writeAt(L.uploadDataPath(uuid), start, req.source, {
        signal: req.signal,
        onWritten: (chunk) => {
          live.hash.update(chunk);
          live.offset += chunk.length;
          written += chunk.length;
        },
      });
    } finally {
      // Whatever happened, what was written counts: the client asks GET <location> and continues there.
      state.offset = start + written;
      state.updatedAt = this.clock();
      await this.persist(uuid, state, live);
    }
    return state;
  }

  private newHash(state?: Sha256State): RunningHash {
    return this.storage.sealedWrites ? new ThreadedSha256(state) : nodeSha256();
  }

  private setLive(uuid: string, live: LiveHash | undefined): void {
    const old = this.live.get(uuid);
    if (old && old !== live) old.hash.close?.();
    if (live) this.live.set(uuid, live);
    else this.live.delete(uuid);
  }

  /**
   * The in-memory hash when it covers exactly the persisted prefix; else the saved resumable state
   * (sealed writes), or a fresh hash over the stored bytes.
   */
  private async liveHash(uuid: string, state: UploadState): Promise<LiveHash> {
    const cur = this.live.get(uuid);
    if (cur && cur.offset === state.offset) return cur;
    if (this.storage.sealedWrites) {
      if (!state.sha256 || state.sha256.length !== state.offset) {
        throw new RegistryError("BLOB_UPLOAD_INVALID", "the upload's hash state does not match its offset; start the upload again", { detail: { uuid } });
      }
      const restored: LiveHash = { hash: this.newHash(state.sha256), offset: state.offset };
      this.setLive(uuid, restored);
      return restored;
    }
    const fresh: LiveHash = { hash: nodeSha256(), offset: 0 };
    if (state.offset > 0) {
      const stream = await this.storage.read(L.uploadDataPath(uuid), { start: 0, end: state.offset - 1 });
      for await (const chunk of stream) {
        fresh.hash.update(chunk as Buffer);
        fresh.offset += (chunk as Buffer).length;
      }
    }
    this.setLive(uuid, fresh);
    return fresh;
  }

  private async hashStored(path: string, size: number, algorithm: ParsedDigest["algorithm"]): Promise<string> {
    const h = createHasher(algorithm);
    if (size > 0) {
      for await (const chunk of await this.storage.read(path, { start: 0, end: size - 1 })) h.update(chunk as Buffer);
    }
    return h.digest("hex");
  }

  private async readState(uuid: string): Promise<UploadState | null> {
    const raw = await this.storage.getContent(L.uploadStatePath(uuid), 64 * 1024);
    return raw ? (JSON.parse(raw.toString("utf8")) as UploadState) : null;
  }

  private async load(uuid: string, repository: string): Promise<UploadState> {
    const state = await this.readState(uuid);
    if (!state || state.repository !== repository) {
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session unknown, finished or cancelled", { detail: { uuid } });
    }
    if (this.clock() - state.updatedAt > this.expiryMs) {
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session expired", { detail: { uuid } });
    }
    const data = await this.storage.stat(L.uploadDataPath(uuid));
    if (!data) throw new StoreError("STORE_CORRUPT", `upload ${uuid} lost its data`);
    if (data.size < state.offset) {
      // The state got ahead of the bytes (a machine crash before the data reached the disk): trust the bytes.
      state.offset = data.size;
      await this.persist(uuid, state);
    }
    return state;
  }

  /** Stores the state; with sealed writes, with the hash state of exactly `state.offset` bytes. */
  private async persist(uuid: string, state: UploadState, live?: LiveHash): Promise<void> {
    if (live?.hash.save && live.offset === state.offset) state.sha256 = await live.hash.save();
    await this.storage.putContent(L.uploadStatePath(uuid), Buffer.from(JSON.stringify(state)));
  }

  private async drop(uuid: string): Promise<void> {
    this.setLive(uuid, undefined);
    await this.storage.delete(L.uploadDir(uuid));
  }

  /** One request at a time per session; tracked so shutdown can wait for offsets to be persisted. */
  private async exclusive<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uuid) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = prev.then(() => mine);
    this.locks.set(uuid, chained);
    const run = prev.then(fn);
    this.inflight.add(run);
    try {
      return await run;
    } finally {
      this.inflight.delete(run);
      release();
      if (this.locks.get(uuid) === chained) this.locks.delete(uuid);
    }
  }
}
