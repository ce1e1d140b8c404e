/**
 * `writeAt` on S3: an object being written is a *write state* stored at the object's own key (JSON,
 * `x-amz-meta-mf-kind: write`), so any replica can continue it and a crash loses nothing reported:
 *
 * ```
 * { v, id, size,
 *   uploadId,                        the S3 multipart upload, at <root>.mf/data/<id> (created with the first part)
 *   parts: [{ n, etag, size, from }], committed parts in order; `from`: the staged objects the part began with
 *   tail:  [{ key, size }],           staged objects after the last part (<root>.mf/staged/<id>/<seq>),
 *   seq,                              of which only the first `size` bytes count
 *   linkedAt }                        set by a move just before it links the completed upload at that key
 * ```
 *
 * Bytes are reported (`onWritten`) only once S3 holds them and the state naming them is stored. Within one
 * call bytes are cut into parts of `partSize` (two in flight); what is left at the end becomes a part if it
 * is a legal one (≥ `minPart`), else a *staged* object, never memory only. The next call's first part
 * starts with the staged bytes (read back, at most a part's worth), and keeps them as its `from`.
 *
 * Cutting back (a write at an offset below the size): parts past the offset are forgotten (their numbers
 * are reused), staged objects are shortened by rewriting only the sizes in the state. A part cannot be
 * cut, but the only offsets a caller cuts back to are resume points it did not move past (`onResumePoint`,
 * after each part and at the end of each call; the session persists its offset there): a part's end, or
 * the end of an earlier call, which inside a part always falls within the part's `from`: the part is
 * dropped and those staged objects become the tail again. `from` objects are deleted once a call starts
 * at or after their part's end.
 *
 * Writers of one key are not locked against each other across processes: an upload session is one
 * client's sequence of requests (upload-sessions.ts serialises them inside a process).
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { StoreError } from "../../../core/errors.js";
import type { WriteAtOptions } from "./driver.js";
import { META_KIND, META_MTIME, META_SIZE, type ObjectInfo, type S3Objects } from "./s3-objects.js";

export interface Staged {
  key: string;
  size: number;
}

export interface Part {
  n: number;
  etag: string;
  size: number;
  from?: Staged[];
}

export interface WriteState {
  v: 1;
  id: string;
  size: number;
  uploadId?: string;
  parts: Part[];
  tail: Staged[];
  seq: number;
  /** the key a move is linking the completed upload at (so a discard after a crash keeps linked data) */
  linkedAt?: string;
}

export interface WriteContext {
  objects: S3Objects;
  /** key prefix of the driver's own objects, ending with `/` */
  internal: string;
  /** the smallest legal part (S3: 5 MiB), also the chunk size clients are told to send */
  minPart: number;
  /** the part size cut within one call */
  partSize: number;
  clock: () => number;
}

const MAX_PARTS = 10_000;
const IN_FLIGHT = 2;

export function dataKey(ctx: WriteContext, st: WriteState): string {
  return `${ctx.internal}data/${st.id}`;
}

function stagedKey(ctx: WriteContext, st: WriteState): string {
  return `${ctx.internal}staged/${st.id}/${st.seq++}`;
}

/** The smallest part that may end a call for part number n: 5 MiB, doubling every 2000 parts (10,000 max). */
function partFloor(ctx: WriteContext, n: number): number {
  return ctx.minPart * 2 ** Math.floor((n - 1) / 2000);
}

function sum(xs: { size: number }[]): number {
  return xs.reduce((a, x) => a + x.size, 0);
}

export async function loadWrite(ctx: WriteContext, key: string): Promise<WriteState | null> {
  const r = await ctx.objects.getBuffer(key);
  if (!r || r.info.kind !== "write") return null;
  return JSON.parse(r.data.toString("utf8")) as WriteState;
}

async function saveWrite(ctx: WriteContext, key: string, st: WriteState): Promise<void> {
  await ctx.objects.put(key, Buffer.from(JSON.stringify(st)), {
    [META_KIND]: "write",
    [META_SIZE]: String(st.size),
    [META_MTIME]: String(ctx.clock()),
  });
}

/** Every staged object a state still names. */
function stagedKeys(st: WriteState): string[] {
  return [...st.tail, ...st.parts.flatMap((p) => p.from ?? [])].map((s) => s.key);
}

/** Keeps the first `bytes` of a staged list (shortening the last kept object); the rest goes to `garbage`. */
function keepPrefix(list: Staged[], bytes: number, garbage: string[]): Staged[] {
  const out: Staged[] = [];
  let pos = 0;
  for (const s of list) {
    const take = Math.min(s.size, bytes - pos);
    if (take > 0) out.push({ key: s.key, size: take });
    else garbage.push(s.key);
    pos += take;
  }
  return out;
}

function cutBack(key: string, st: WriteState, offset: number, garbage: string[]): void {
  let pos = 0;
  const kept: Part[] = [];
  let tail: Staged[] | undefined;
  for (const p of st.parts) {
    const end = pos + p.size;
    if (end <= offset) kept.push(p);
    else if (pos < offset) {
      const from = p.from ?? [];
      if (sum(from) < offset - pos) {
        throw new StoreError("STORE_CORRUPT", `${key}: cannot cut back to ${offset}, inside a part already in S3 (parts ${pos}–${end})`);
      }
      tail = keepPrefix(from, offset - pos, garbage);
    } else garbage.push(...(p.from ?? []).map((s) => s.key));
    pos = end;
  }
  if (kept.length < st.parts.length) {
    garbage.push(...st.tail.map((s) => s.key));
    st.parts = kept;
    st.tail = tail ?? [];
  } else {
    st.tail = keepPrefix(st.tail, offset - pos, garbage);
  }
  st.size = offset;
}

/** Parts the caller has written past: the staged objects they began with are no longer needed. */
function acceptParts(st: WriteState, offset: number, garbage: string[]): boolean {
  let pos = 0;
  let changed = false;
  for (const p of st.parts) {
    pos += p.size;
    if (pos <= offset && p.from) {
      garbage.push(...p.from.map((s) => s.key));
      delete p.from;
      changed = true;
    }
  }
  return changed;
}

async function readStaged(ctx: WriteContext, list: Staged[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const s of list) {
    const r = await ctx.objects.getBuffer(s.key, s.size);
    if (!r || r.data.length < s.size) throw new StoreError("STORE_CORRUPT", `staged object ${s.key} is missing or short`);
    out.push(r.data.subarray(0, s.size));
  }
  return out;
}

async function deleteQuietly(ctx: WriteContext, keys: string[]): Promise<void> {
  if (keys.length) await ctx.objects.deleteMany(keys).catch(() => {});
}

/**
 * The S3 half of StorageDriver.writeAt. `existing` is the HEAD of `key` (null when absent): a write state
 * continues; a plain object or a link is replaced by a new write from offset 0.
 */
export async function writeAt(
  ctx: WriteContext,
  key: string,
  existing: ObjectInfo | null,
  offset: number,
  source: AsyncIterable<Uint8Array>,
  options: WriteAtOptions = {},
): Promise<number> {
  const garbage: string[] = [];
  let st = existing?.kind === "write" ? await loadWrite(ctx, key) : null;
  let dirty = false;
  if (!st) {
    if (offset !== 0) {
      throw new StoreError("STORE_CORRUPT", existing ? `${key}: a finished object can only be rewritten from offset 0` : `${key}: nothing to continue at offset ${offset}`);
    }
    if (existing?.kind === "link" && existing.target) garbage.push(existing.target);
    st = { v: 1, id: randomUUID(), size: 0, parts: [], tail: [], seq: 0 };
    dirty = true;
  }
  if (offset > st.size) throw new StoreError("STORE_CORRUPT", `${key} holds ${st.size} bytes, fewer than offset ${offset}`);
  if (offset < st.size) {
    cutBack(key, st, offset, garbage);
    dirty = true;
  }
  if (acceptParts(st, offset, garbage)) dirty = true;
  if (dirty) await saveWrite(ctx, key, st);
  await deleteQuietly(ctx, garbage);
  return streamInto(ctx, key, st, source, options);
}

async function streamInto(ctx: WriteContext, key: string, st: WriteState, source: AsyncIterable<Uint8Array>, options: WriteAtOptions): Promise<number> {
  const state = st;
  let reported = 0;
  let nextN = (state.parts.at(-1)?.n ?? 0) + 1;
  let tailBytes = sum(state.tail);
  let chain: Promise<void> = Promise.resolve();
  const inflight: Promise<void>[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;

  const commit = (step: () => Promise<void>) => {
    const done = chain.then(step);
    chain = done;
    inflight.push(done);
    done.catch(() => {}); // observed through `chain`
  };

  const emitPart = async () => {
    if (!state.uploadId) {
      state.uploadId = await ctx.objects.createMultipart(dataKey(ctx, state));
      await saveWrite(ctx, key, state);
    }
    const n = nextN++;
    if (n > MAX_PARTS) throw new StoreError("STORE_CORRUPT", `${key}: more than ${MAX_PARTS} parts`);
    const from = tailBytes > 0 ? state.tail : undefined;
    const head = from ? await readStaged(ctx, from) : [];
    tailBytes = 0;
    const chunks = pending;
    pending = [];
    pendingBytes = 0;
    const body = Buffer.concat([...head, ...chunks]);
    const upload = ctx.objects.uploadPart(dataKey(ctx, state), state.uploadId, n, body, options.signal);
    upload.catch(() => {});
    commit(async () => {
      const etag = await upload;
      state.parts.push({ n, etag, size: body.length, ...(from ? { from } : {}) });
      if (from) state.tail = [];
      state.size += body.length - sum(from ?? []);
      await saveWrite(ctx, key, state);
      for (const c of chunks) {
        reported += c.length;
        options.onWritten?.(c);
      }
      options.onResumePoint?.();
    });
    while (inflight.length >= IN_FLIGHT) await inflight.shift();
  };

  const stage = () => {
    const chunks = pending;
    pending = [];
    pendingBytes = 0;
    const body = Buffer.concat(chunks);
    const staged = { key: stagedKey(ctx, state), size: body.length };
    const put = ctx.objects.put(staged.key, body, {});
    put.catch(() => {});
    commit(async () => {
      await put;
      state.tail.push(staged);
      state.size += staged.size;
      await saveWrite(ctx, key, state);
      for (const c of chunks) {
        reported += c.length;
        options.onWritten?.(c);
      }
      options.onResumePoint?.();
    });
  };

  let sourceError: unknown;
  try {
    for await (const chunk of source) {
      options.signal?.throwIfAborted();
      if (chunk.length === 0) continue;
      pending.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      pendingBytes += chunk.length;
      if (tailBytes + pendingBytes >= Math.max(ctx.partSize, partFloor(ctx, nextN))) await emitPart();
    }
  } catch (e) {
    sourceError = e;
  }
  try {
    // What arrived is kept (a cut request body included), unless S3 failed or the caller gave up.
    const storeFailed = await chain.then(() => false, () => true);
    if (pendingBytes > 0 && !storeFailed && !options.signal?.aborted) {
      if (tailBytes + pendingBytes >= partFloor(ctx, nextN)) await emitPart();
      else stage();
    }
  } finally {
    await Promise.allSettled(inflight);
  }
  await chain;
  if (sourceError !== undefined) throw sourceError;
  return reported;
}

/**
 * Turns a write into its final object: completes the multipart upload (the staged tail becoming the
 * last part) and returns its key, or, for a write that never reached a part, returns its bytes (< 5 MiB)
 * for a plain object. Safe to repeat after a crash (a completed upload is recognised by its size).
 */
export async function sealWrite(ctx: WriteContext, st: WriteState): Promise<{ dataKey: string } | { bytes: Buffer }> {
  if (!st.uploadId || st.parts.length === 0) return { bytes: Buffer.concat(await readStaged(ctx, st.tail)) };
  const key = dataKey(ctx, st);
  const done = await ctx.objects.head(key);
  if (done && done.size === st.size) return { dataKey: key };
  const parts = st.parts.map((p) => ({ n: p.n, etag: p.etag }));
  if (st.tail.length) {
    const n = st.parts.at(-1)!.n + 1;
    parts.push({ n, etag: await ctx.objects.uploadPart(key, st.uploadId, n, Buffer.concat(await readStaged(ctx, st.tail))) });
  }
  await ctx.objects.completeMultipart(key, st.uploadId, parts, st.size);
  return { dataKey: key };
}

/** Records, before a move writes its link, where the completed upload is being linked. */
export async function markLinked(ctx: WriteContext, key: string, st: WriteState, at: string): Promise<void> {
  st.linkedAt = at;
  await saveWrite(ctx, key, st);
}

/**
 * Removes what a write state owns: staged objects, and (unless `keepData`) its multipart upload or data,
 * except data that a move crashed half-way through has already linked somewhere.
 */
export async function discardWrite(ctx: WriteContext, st: WriteState, keepData: boolean): Promise<void> {
  if (!keepData) {
    const data = dataKey(ctx, st);
    if (st.uploadId) await ctx.objects.abortMultipart(data, st.uploadId);
    const link = st.linkedAt ? await ctx.objects.head(st.linkedAt) : null;
    if (!(link?.kind === "link" && link.target === data)) await deleteQuietly(ctx, [data]);
  } else if (st.uploadId && st.parts.length === 0) {
    await ctx.objects.abortMultipart(dataKey(ctx, st), st.uploadId);
  }
  await deleteQuietly(ctx, stagedKeys(st));
}

/** The bytes of a write that has no parts yet (staged objects only), or of a span of them. */
export function readStagedWrite(ctx: WriteContext, key: string, st: WriteState, span?: { start: number; end: number }): Readable {
  if (st.parts.length > 0) {
    throw new StoreError("STORE_CORRUPT", `${key} is being written and its parts are in an open S3 multipart upload: readable once moved`);
  }
  const start = span?.start ?? 0;
  const end = span ? Math.min(span.end, st.size - 1) : st.size - 1;
  const objects = ctx.objects;
  return Readable.from((async function* () {
    let pos = 0;
    for (const s of st.tail) {
      const from = Math.max(start, pos);
      const to = Math.min(end, pos + s.size - 1);
      if (from <= to) {
        const r = await objects.get(s.key, { start: from - pos, end: to - pos });
        if (!r) throw new StoreError("STORE_CORRUPT", `staged object ${s.key} is missing`);
        yield* r.body;
      }
      pos += s.size;
    }
  })());
}
