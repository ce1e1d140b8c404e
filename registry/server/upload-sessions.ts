/**
 * Upload sessions as data in storage (architecture principle 7). A session is `uploads/<uuid>/data` plus
 * `state.json` ({repository, offset, startedAt, updatedAt[, sha256][, finishing]}). The persisted offset is
 * the truth: bytes past it (a PATCH cut by a crash) are discarded when the session is next written. It is
 * persisted after every request and, while a PATCH streams, at the driver's resume points once
 * `checkpointBytes` more have arrived (filesystem: every batch; S3: part ends only), so a crash during one
 * long PATCH loses at most about that much. The running hash follows exactly the bytes the driver reports
 * written, so the closing PUT never re-reads the blob. Where the stored bytes can be read back
 * (filesystem) the hash is node's, in memory, and a session whose hash is not in memory (after a restart,
 * or on another replica) re-hashes its stored prefix once. Where they cannot (S3: parts of an open
 * multipart upload; the driver's `sealedWrites`), the hash is the resumable SHA-256 of
 * storage/sha256-state.ts (on a worker thread: storage/sha256-worker.ts) and its state is saved in
 * state.json with the offset it covers, so any replica continues where the last request stopped.
 *
 * Finishing (the closing PUT) is a sequence that a crash may cut anywhere, and every step is repeatable:
 * the PUT's own bytes are written (their offset not yet persisted: cut here, the session is as before
 * the PUT, which can be sent again); the digest is verified and recorded in the state with the offset
 * (`finishing`); the bytes are moved to the blob's path (unless the blob is there already); the
 * repository's link is written; the session is removed (state first, so a half-removed session is
 * debris without a state). A session found `finishing` (a retried PUT, a GET, PATCH or DELETE, the sweep)
 * is rolled forward from wherever it stopped: a retried PUT of the same digest answers as the first would
 * have; everything else then answers BLOB_UPLOAD_UNKNOWN, as for any finished session. A session whose
 * bytes are gone without that record is unknown too, never a server error.
 */
import { randomUUID } from "node:crypto";
import { createHasher, parseDigest, type ParsedDigest } from "../../core/digest.js";
import { MfError, RegistryError } from "../../core/errors.js";
import type { BlobInfo, RepoStore } from "./repo-store.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import type { Sha256State } from "./storage/sha256-state.js";
import { ThreadedSha256 } from "./storage/sha256-worker.js";
import { digestString, isUuid } from "./validate.js";

export interface UploadState {
  repository: string;
  offset: number;
  startedAt: number;
  updatedAt: number;
  /** the SHA-256 state of the first `offset` bytes (drivers with sealed writes) */
  sha256?: Sha256State;
  /** the verified digest, once the closing PUT has checked it: the session is being finished */
  finishing?: string;
}

/**
 * The steps of finishing a session and of a streamed write, where a test makes the process die
 * (`MF_FAULT=upload-finish:after-move mf registry serve …`; cli/commands/registry.ts): the PUT's bytes
 * written, the digest recorded, the blob moved into place, the repository link written, the session
 * removed; and a checkpoint of the offset persisted in the middle of a request.
 */
export const UPLOAD_FAULT_POINTS = [
  "upload-finish:after-data",
  "upload-finish:after-mark",
  "upload-finish:after-move",
  "upload-finish:after-link",
  "upload-finish:after-remove",
  "upload-append:after-checkpoint",
] as const;
export type UploadFaultPoint = (typeof UPLOAD_FAULT_POINTS)[number];
export type FaultHook = (point: UploadFaultPoint) => void;

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
  /** while a PATCH streams, persist the offset each time this many more bytes are stored (default 32 MiB) */
  checkpointBytes?: number;
  /** test-only: called at each step of UPLOAD_FAULT_POINTS */
  fault?: FaultHook;
  /** told the size of each chunk of a blob stored (metrics: bytes received) */
  onBytes?: (bytes: number) => void;
}

export const DEFAULT_CHECKPOINT_BYTES = 32 << 20;

/** What a PATCH or PUT asks to write. */
export interface AppendRequest {
  source: AsyncIterable<Uint8Array>;
  /** the `Content-Range` start when given: must equal the stored size */
  start?: number;
  /** the `Content-Range` length when given: a body of another length is refused (416) and changes nothing */
  length?: number;
  signal?: AbortSignal;
}

const EMPTY: AsyncIterable<Uint8Array> = { async *[Symbol.asyncIterator]() {} };

export class UploadSessions {
  private readonly storage: StorageDriver;
  private readonly store: RepoStore;
  private readonly clock: () => number;
  private readonly expiryMs: number;
  private readonly checkpointBytes: number;
  private readonly fault: FaultHook;
  private readonly onBytes: (bytes: number) => void;
  private readonly live = new Map<string, LiveHash>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(options: UploadSessionsOptions) {
    this.storage = options.storage;
    this.store = options.store;
    this.clock = options.clock;
    this.expiryMs = options.expiryMs;
    this.checkpointBytes = Math.max(1, options.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES);
    this.fault = options.fault ?? (() => {});
    this.onBytes = options.onBytes ?? (() => {});
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

  /**
   * The session's persisted state; BLOB_UPLOAD_UNKNOWN when absent, expired, finished or of another
   * repository (a session found half-finished is finished first).
   */
  async status(uuid: string, repository: string): Promise<UploadState> {
    const { state } = await this.load(uuid, repository);
    if (!state.finishing) return state;
    return this.exclusive(uuid, async () => {
      const again = (await this.load(uuid, repository)).state;
      if (!again.finishing) return again;
      return (await this.rollForward(uuid, again)) ? finishedError(uuid, again.finishing) : lostError(uuid);
    });
  }

  /** Appends a chunk (PATCH). Throws RANGE_INVALID (detail.offset) when `start` is not the stored size. */
  append(uuid: string, repository: string, req: AppendRequest): Promise<UploadState> {
    return this.exclusive(uuid, async () => {
      const loaded = await this.load(uuid, repository);
      if (loaded.state.finishing) {
        return (await this.rollForward(uuid, loaded.state)) ? finishedError(uuid, loaded.state.finishing) : lostError(uuid);
      }
      if (loaded.sealed) throw sealedError(uuid);
      return this.appendLocked(uuid, loaded.state, req);
    });
  }

  /**
   * Closes the session (PUT): optional last chunk, digest check, then the blob appears by a move. Safe to
   * repeat after a crash at any step: a session already verified for `digest` is finished from where it
   * stopped (the request's body, the same bytes, is then not needed).
   */
  finish(uuid: string, repository: string, digest: ParsedDigest, req?: AppendRequest): Promise<BlobInfo> {
    return this.exclusive(uuid, async () => {
      const loaded = await this.load(uuid, repository);
      let state = loaded.state;
      if (state.finishing) {
        if (!(await this.rollForward(uuid, state))) return lostError(uuid);
        if (state.finishing !== digestString(digest)) return finishedError(uuid, state.finishing);
        return { size: state.offset, modifiedMs: this.clock() };
      }
      let data = loaded.sealed ? L.uploadSealedPath(uuid) : L.uploadDataPath(uuid);
      if (req) {
        if (loaded.sealed) throw sealedError(uuid);
        state = await this.appendLocked(uuid, state, req, true);
      }
      this.fault("upload-finish:after-data");
      // Bytes past the persisted offset are not part of the blob.
      if (!loaded.sealed) {
        const stored = await this.storage.stat(data);
        if (stored && stored.size > state.offset) await this.storage.writeAt(data, state.offset, EMPTY);
      }
      if (digest.algorithm !== "sha256" && this.storage.sealedWrites && !loaded.sealed) {
        // no resumable state for other algorithms: finish the write first, then hash it by reading
        await this.persist(uuid, state, this.live.get(uuid));
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
      // From here on the session only ever moves forward: whoever finds it finishes it. (The same write
      // persists the offset of the PUT's own chunk.)
      state.finishing = digestString(digest);
      state.updatedAt = this.clock();
      await this.persist(uuid, state);
      this.fault("upload-finish:after-mark");
      if (!(await this.rollForward(uuid, state))) return lostError(uuid);
      return { size: state.offset, modifiedMs: this.clock() };
    });
  }

  /** Cancels (DELETE). A session that was being finished is finished instead, and is then unknown. */
  cancel(uuid: string, repository: string): Promise<void> {
    return this.exclusive(uuid, async () => {
      const { state } = await this.load(uuid, repository);
      if (state.finishing) {
        return (await this.rollForward(uuid, state)) ? finishedError(uuid, state.finishing) : lostError(uuid);
      }
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
        // a session cut while being finished is finished (its blob linked), like any client touching it would
        if (state?.finishing) await this.exclusive(name, () => this.rollForward(name, state));
        else await this.drop(name);
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

  /**
   * Writes a chunk. The offset is persisted at the end, and at checkpoints while a PATCH streams. A
   * closing PUT's chunk (`last`) is not checkpointed and, when it arrives whole, is persisted only together
   * with its verified digest: a crash in between leaves the session where it was before that PUT, so the
   * same PUT sent again (with or without a Content-Range) succeeds.
   */
  private async appendLocked(uuid: string, state: UploadState, req: AppendRequest, last = false): Promise<UploadState> {
    if (req.start !== undefined && req.start !== state.offset) {
      throw new RegistryError("RANGE_INVALID", `chunk starts at ${req.start} but the upload holds ${state.offset} bytes`, {
        detail: { offset: state.offset },
      });
    }
    const live = await this.liveHash(uuid, state);
    const start = state.offset;
    const startHash = state.sha256;
    let written = 0;
    let refused: RegistryError | undefined;
    const source = req.length === undefined ? req.source : exactly(req.source, req.length, start, (e) => (refused = e));
    // Checkpoints: the offset persisted at resume points while the body streams, one write at a time.
    let checkpointed = start;
    let checkpoint: Promise<void> | undefined;
    const onResumePoint = () => {
      const at = start + written;
      if (last || checkpoint || at - checkpointed < this.checkpointBytes) return;
      checkpointed = at;
      // live covers exactly `at` bytes now: persist saves the hash state of that same prefix
      checkpoint = this.persist(uuid, { ...state, offset: at, updatedAt: this.clock() }, live)
        .then(() => this.fault("upload-append:after-checkpoint"))
        .catch(() => {}) // a lost checkpoint only costs resume granularity; the request's end persists again
        .finally(() => (checkpoint = undefined));
    };
    let whole = false;
    try {
      await this.storage.writeAt(L.uploadDataPath(uuid), start, source, {
        signal: req.signal,
        onWritten: (chunk) => {
          live.hash.update(chunk);
          live.offset += chunk.length;
          written += chunk.length;
          this.onBytes(chunk.length);
        },
        onResumePoint,
      });
      whole = true;
    } finally {
      while (checkpoint) await checkpoint;
      state.updatedAt = this.clock();
      if (whole && last) {
        state.offset = start + written;
      } else if (refused) {
        // A body that contradicts its Content-Range counts for nothing: back to where it started.
        state.offset = start;
        state.sha256 = startHash;
        this.setLive(uuid, undefined);
        await this.persist(uuid, state);
      } else {
        // Whatever happened, what was written counts: the client asks GET <location> and continues there.
        state.offset = start + written;
        await this.persist(uuid, state, live);
      }
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

  /**
   * The session's state and where its bytes are (`sealed`: moved aside to be hashed by reading, S3 and
   * sha512 only). A session without bytes and not being finished is removed and unknown.
   */
  private async load(uuid: string, repository: string): Promise<{ state: UploadState; sealed: boolean }> {
    const state = await this.readState(uuid);
    if (!state || state.repository !== repository) {
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session unknown, finished or cancelled", { detail: { uuid } });
    }
    if (this.clock() - state.updatedAt > this.expiryMs) {
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session expired", { detail: { uuid } });
    }
    if (state.finishing) return { state, sealed: false };
    let sealed = false;
    let data = await this.storage.stat(L.uploadDataPath(uuid));
    if (!data) {
      data = await this.storage.stat(L.uploadSealedPath(uuid));
      sealed = !!data;
    }
    if (!data) {
      // bytes gone without a verified digest (e.g. a registry of an older version cut while finishing)
      await this.drop(uuid);
      return lostError(uuid);
    }
    if (data.size < state.offset) {
      // The state got ahead of the bytes (a machine crash before the data reached the disk): trust the bytes.
      state.offset = data.size;
      await this.persist(uuid, state);
    }
    return { state, sealed };
  }

  /**
   * Finishes a session whose digest was verified (`state.finishing`), from whatever step it stopped at:
   * the bytes moved to the blob's path unless the blob is there, the repository linked, the session
   * removed. Every step is repeatable. False when neither the blob nor the session's bytes are left (the
   * session is then removed: the client uploads again).
   */
  private async rollForward(uuid: string, state: UploadState): Promise<boolean> {
    const digest = parseDigest(state.finishing!);
    if (!digest) {
      await this.drop(uuid);
      return false;
    }
    if (!(await this.store.touchBlob(digest))) {
      let moved = false;
      for (const from of [L.uploadDataPath(uuid), L.uploadSealedPath(uuid)]) {
        try {
          await this.storage.move(from, L.blobPath(digest));
          moved = true;
          break;
        } catch (e) {
          if (!(e instanceof MfError && e.code === "BLOB_UNKNOWN")) throw e;
        }
      }
      this.fault("upload-finish:after-move");
      // moved now, or by a concurrent finisher of the same session (another replica)
      if (!(await this.store.touchBlob(digest)) && !moved) {
        await this.drop(uuid);
        return false;
      }
    }
    await this.store.linkBlob(state.repository, digest);
    this.fault("upload-finish:after-link");
    await this.drop(uuid);
    this.fault("upload-finish:after-remove");
    return true;
  }

  /** Stores the state; with sealed writes, with the hash state of exactly `state.offset` bytes. */
  private async persist(uuid: string, state: UploadState, live?: LiveHash): Promise<void> {
    if (live?.hash.save && live.offset === state.offset) state.sha256 = await live.hash.save();
    await this.storage.putContent(L.uploadStatePath(uuid), Buffer.from(JSON.stringify(state)));
  }

  /** Removes a session: its state first, so a removal cut half-way leaves debris without a state (swept). */
  private async drop(uuid: string): Promise<void> {
    this.setLive(uuid, undefined);
    await this.storage.delete(L.uploadStatePath(uuid));
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

function finishedError(uuid: string, digest: string): never {
  throw new RegistryError("BLOB_UPLOAD_UNKNOWN", `upload session finished (the blob is ${digest})`, { detail: { uuid, digest } });
}

function lostError(uuid: string): never {
  throw new RegistryError("BLOB_UPLOAD_UNKNOWN", "upload session lost its bytes; start the upload again", { detail: { uuid } });
}

function sealedError(uuid: string): never {
  throw new RegistryError("BLOB_UPLOAD_INVALID", "the upload was closed for hashing and takes no more bytes; finish it or start again", { detail: { uuid } });
}

/**
 * The body of a chunk whose `Content-Range` announced `length` bytes: more bytes, or a body that ends
 * short, is refused (416) before a byte past the range reaches storage. `onRefused` tells the caller.
 */
async function* exactly(source: AsyncIterable<Uint8Array>, length: number, start: number, onRefused: (e: RegistryError) => void): AsyncGenerator<Uint8Array> {
  let seen = 0;
  const refuse = (what: string): never => {
    const e = new RegistryError("RANGE_INVALID", `Content-Range ${start}-${start + length - 1} announces ${length} bytes but the body ${what}`, {
      detail: { offset: start },
    });
    onRefused(e);
    throw e;
  };
  for await (const chunk of source) {
    seen += chunk.length;
    if (seen > length) refuse("holds more");
    yield chunk;
  }
  if (seen < length) refuse(`holds ${seen}`);
}
