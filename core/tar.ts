/**
 * Reading a tar stream one entry at a time with backpressure (`mf load`'s archives, tar layers of model
 * images), over the `tar` package's Parser in strict mode: a malformed archive is an error, not a warning.
 */
import type { Readable } from "node:stream";
import { Parser, type ReadEntry } from "tar";
import { MfError, StoreError } from "./errors.js";

export type { ReadEntry };

/** An entry's content whole, refused past `max` bytes. */
export async function readEntry(entry: ReadEntry, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of entry) {
    n += (c as Buffer).length;
    if (n > max) throw new StoreError("SIZE_INVALID", `archive entry ${entry.path} is larger than ${max} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Feeds the tar stream through `tar`'s Parser, handling one entry at a time, with backpressure. */
export async function parseTar(input: Readable, signal: AbortSignal | undefined, onEntry: (e: ReadEntry) => Promise<void>): Promise<void> {
  const parser = new Parser({ strict: true });
  let failed: unknown;
  let chain = Promise.resolve();
  let current: ReadEntry | undefined;
  parser.on("entry", (entry: ReadEntry) => {
    current = entry;
    chain = chain.then(() => (failed ? void entry.resume() : onEntry(entry))).catch((e) => {
      failed ??= e;
      entry.resume();
    });
  });
  let parseError: unknown;
  parser.on("error", (e: unknown) => (parseError ??= e));
  parser.on("warn", (code: string, message: string) => {
    if (code === "TAR_ENTRY_INVALID" || code === "TAR_BAD_ARCHIVE" || code === "TAR_ABORT") parseError ??= new StoreError("BAD_REQUEST", `archive: ${message}`);
  });
  const ended = new Promise<void>((resolve) => parser.on("end", () => resolve()));
  try {
    for await (const c of input) {
      signal?.throwIfAborted();
      if (failed) break;
      if (!parser.write(c as Buffer)) await new Promise<void>((r) => parser.once("drain", () => r()));
    }
  } catch (e) {
    // the input failed mid-entry: that entry will get no more bytes, so its reader is told, not left waiting
    failed ??= e;
    current?.destroy(e as Error);
  }
  if (!failed) {
    parser.end();
    await ended;
  }
  await chain;
  if (failed) throw failed;
  if (parseError) throw parseError instanceof MfError ? parseError : new StoreError("BAD_REQUEST", `archive is not a readable tar: ${(parseError as Error).message}`);
}
