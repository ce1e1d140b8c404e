/**
 * One blob to a registry, resumably: an upload session (its location kept on disk), chunked `PATCH`es
 * with `Content-Range: a-b` from the registry's offset (at least the `OCI-Chunk-Min-Length` the registry
 * asks for), and the closing `PUT <location>?digest=`. After
 * any interruption the session is asked its offset (`GET <location>`) and the upload continues there. A
 * session the registry no longer knows (expired, cancelled, finished by a PUT whose answer was lost, or
 * broken: any error answer) is never fatal: when the registry has the blob (`HEAD`) the upload is done,
 * else a new session starts.
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { RegistryError } from "../../core/errors.js";
import type { LocalStore } from "../../core/store.js";
import { blobPath, uploadsPath, withDigestQuery } from "../protocol/paths.js";
import { discard, header, httpStatusOf, isTransient, type RegistryHttp } from "./http.js";
import type { WireRef } from "./names.js";
import type { UploadSessions } from "./upload-sessions.js";

export interface UploadOptions {
  http: RegistryHttp;
  store: LocalStore;
  sessions: UploadSessions;
  w: WireRef;
  digest: string;
  size: number;
  /** bytes per PATCH (default 64 MiB); 0 sends the rest of the blob in one streamed PATCH */
  chunkSize?: number;
  /** repository to mount the blob from (cross-repository mount) */
  mountFrom?: string;
  signal?: AbortSignal;
  onProgress?: (completed: number) => void;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;
const MAX_RESTARTS = 3;

/** The registry's `Range: 0-<last>` as the next offset (0 for `0-0`, the spelling of an empty session). */
function offsetOf(range: string | undefined): number | undefined {
  if (!range) return undefined;
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

function absolute(location: string | undefined, base: string): string {
  if (!location) throw new RegistryError("BLOB_UPLOAD_INVALID", "registry answered an upload request without a Location");
  return new URL(location, base).toString();
}

/** The blob's size when the repository has it (`HEAD` 200), else undefined. */
export async function blobExists(http: RegistryHttp, w: WireRef, digest: string, signal?: AbortSignal): Promise<number | undefined> {
  const res = await http.send({ method: "HEAD", url: w.base + blobPath(w.name, digest), signal, ok: (s) => s === 200 || s === 404 });
  discard(res.body);
  if (res.status !== 200) return undefined;
  return Number(header(res, "content-length") ?? "-1");
}

/** Returns "mounted" when the registry mounted the blob, else "uploaded" (by this call or an earlier one). */
export async function uploadBlob(o: UploadOptions): Promise<"mounted" | "uploaded"> {
  const { http, w, digest, size, sessions } = o;
  let chunk = o.chunkSize === undefined ? DEFAULT_CHUNK_SIZE : o.chunkSize <= 0 ? Infinity : o.chunkSize;
  let location: string | undefined;
  let offset = 0;
  /** A registry that asks for larger chunks (`OCI-Chunk-Min-Length`, e.g. S3's 5 MiB parts) gets them. */
  const honourMinChunk = (res: { headers: Record<string, string | string[] | undefined> }) => {
    const min = Number(header(res, "oci-chunk-min-length"));
    if (Number.isSafeInteger(min) && min > chunk) chunk = min;
  };

  const start = async (mount: boolean): Promise<"mounted" | undefined> => {
    const url = w.base + uploadsPath(w.name, mount && o.mountFrom ? { mount: digest, from: o.mountFrom } : {});
    const res = await http.send({ method: "POST", url, headers: { "content-length": "0" }, signal: o.signal, ok: (s) => s === 201 || s === 202 });
    discard(res.body);
    if (res.status === 201) return "mounted";
    honourMinChunk(res);
    location = absolute(header(res, "location"), res.url);
    offset = 0;
    await sessions.set(w.base, w.name, digest, location, 0);
    return undefined;
  };

  /**
   * Asks the session where it stands; false when the registry has lost it: 404 (unknown, expired, or
   * finished by a PUT whose answer never arrived) or any other error answer, after the retries of 5xx.
   */
  const status = async (): Promise<boolean> => {
    try {
      const res = await http.send({ method: "GET", url: location!, signal: o.signal, ok: (s) => s === 204 || s === 200 });
      discard(res.body);
      const off = offsetOf(header(res, "range"));
      if (off === undefined) return false;
      honourMinChunk(res);
      offset = off;
      location = header(res, "location") ? absolute(header(res, "location"), location!) : location;
      return true;
    } catch (e) {
      if (httpStatusOf(e) !== undefined && !o.signal?.aborted) return false;
      throw e;
    }
  };

  /** The session is lost: done when the registry has the blob (a PUT whose answer was lost), else start again. */
  const lost = async (): Promise<boolean> => {
    await sessions.delete(w.base, w.name, digest);
    if ((await blobExists(http, w, digest, o.signal)) !== undefined) return true;
    await start(false);
    return false;
  };

  const done = async (): Promise<"uploaded"> => {
    await sessions.delete(w.base, w.name, digest);
    o.onProgress?.(size);
    return "uploaded";
  };

  const saved = await sessions.get(w.base, w.name, digest);
  if (saved) {
    location = saved.location;
    if (!(await status())) {
      location = undefined;
      await sessions.delete(w.base, w.name, digest);
      if ((await blobExists(http, w, digest, o.signal)) !== undefined) return done();
    }
  }
  if (!location && (await start(true)) === "mounted") {
    o.onProgress?.(size);
    return "mounted";
  }
  o.onProgress?.(offset);

  let restarts = 0;
  let attempt = 0;
  for (;;) {
    try {
      if (offset < size && !(offset === 0 && size <= chunk)) {
        const end = Math.min(size, offset + chunk);
        const res = await http.send({
          method: "PATCH",
          url: location!,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(end - offset),
            "content-range": `${offset}-${end - 1}`,
          },
          body: () => Readable.from(counted(o, offset, end), { objectMode: false }),
          signal: o.signal,
          retry: false,
          redirect: false,
          ok: (s) => s === 202 || s === 204,
        });
        discard(res.body);
        location = absolute(header(res, "location"), location!);
        offset = end;
        attempt = 0;
        await sessions.set(w.base, w.name, digest, location, offset);
        continue;
      }
      // the closing PUT; with the whole blob in its body when nothing was sent yet
      const whole = offset === 0 && size > 0;
      const res = await http.send({
        method: "PUT",
        url: withDigestQuery(location!, digest),
        headers: whole
          ? { "content-type": "application/octet-stream", "content-length": String(size) }
          : { "content-length": "0" },
        body: whole ? () => Readable.from(counted(o, 0, size), { objectMode: false }) : undefined,
        signal: o.signal,
        retry: false,
        redirect: false,
        ok: (s) => s === 201 || s === 204,
      });
      discard(res.body);
      return await done();
    } catch (e) {
      if (o.signal?.aborted) throw e;
      const st = httpStatusOf(e);
      if (st === 404 || (st === 400 && (e as RegistryError).code === "BLOB_UPLOAD_INVALID")) {
        // the registry forgot the session (expired, cancelled, finished, restarted without it)
        if (++restarts > MAX_RESTARTS) throw e;
        if (await lost()) return done();
        o.onProgress?.(0);
        continue;
      }
      if (st === 400 && (e as RegistryError).code === "DIGEST_INVALID") {
        await sessions.delete(w.base, w.name, digest);
        throw new RegistryError("DIGEST_INVALID", `the registry computed another digest for ${digest}: the local blob may be corrupt (${(e as Error).message})`, { cause: e });
      }
      const retryable = st === 416 || isTransient(e) || (st !== undefined && st >= 500) || st === 429;
      if (!retryable || attempt >= http.retries) throw e;
      await http.backoff(++attempt, o.signal);
      if (!(await status())) {
        if (++restarts > MAX_RESTARTS) throw e;
        if (await lost()) return done();
      }
      o.onProgress?.(offset);
    }
  }
}

/** The blob's bytes [from, to) as a body, reporting progress as they are sent. */
async function* counted(o: UploadOptions, from: number, to: number): AsyncGenerator<Buffer> {
  let sent = from;
  if (to <= from) return;
  for await (const c of createReadStream(o.store.blobPath(o.digest), { start: from, end: to - 1, highWaterMark: 1 << 20 })) {
    sent += (c as Buffer).length;
    yield c as Buffer;
    o.onProgress?.(sent);
  }
}
