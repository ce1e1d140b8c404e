/**
 * Buffered, bounds-checked little-endian reads from a file handle, for parsing a GGUF header without
 * reading the whole file. Every length is checked against the bytes left in the file before anything
 * is allocated, so a hostile length field costs an error, never memory.
 */
import { BuildError } from "../core/errors.js";

/** Positioned reads: a FileHandle, or anything that reads a range of bytes (a registry's blob storage). */
export interface PositionedSource {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

const CHUNK = 1 << 16;
/** Longest metadata string kept in memory (real ones — chat templates, tokenizer JSON — are far shorter). */
export const MAX_STRING_BYTES = 64 << 20;

export class GgufHeaderReader {
  /** Absolute file position of the next byte to parse. */
  pos = 0;
  private buf = Buffer.alloc(CHUNK);
  private bufStart = 0;
  private bufLen = 0;
  private committed = 0;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(
    private readonly fh: PositionedSource,
    readonly size: number,
    readonly path: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** Bytes between the parse position and the end of the file. */
  get remaining(): number {
    return this.size - this.pos;
  }

  invalid(message: string, detail?: Record<string, unknown>): BuildError {
    return new BuildError("GGUF_INVALID", `${this.path} ${message}`, { detail: { path: this.path, ...detail } });
  }

  truncated(needed: number): BuildError {
    return this.invalid(`is truncated: the header needs ${needed} bytes but the file has ${this.size}`, {
      needed,
      size: this.size,
    });
  }

  /** Makes bytes [pos, pos + n) available in the buffer, or throws GGUF_INVALID if the file is shorter. */
  private async ensure(n: number): Promise<void> {
    if (this.pos + n > this.size) throw this.truncated(this.pos + n);
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen) return;
    this.signal?.throwIfAborted();
    const want = Math.min(Math.max(n, CHUNK), this.size - this.pos);
    if (want > this.buf.length) this.buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.fh.read(this.buf, got, want - got, this.pos + got);
      if (bytesRead === 0) break; // the file shrank under us
      got += bytesRead;
    }
    this.bufStart = this.pos;
    this.bufLen = got;
    if (got < n) throw this.truncated(this.pos + n);
  }

  /** Bytes [pos, pos + n) now, or throws NeedMore when they are in the file but not yet buffered. */
  private take(n: number): number {
    const end = this.pos + n;
    if (end > this.size) throw this.truncated(end);
    if (this.pos < this.bufStart || end > this.bufStart + this.bufLen) throw new NeedMore(end);
    const at = this.pos - this.bufStart;
    this.pos = end;
    return at;
  }

  /**
   * Runs a synchronous parse over buffered bytes. `parse` calls `commit()` after each complete item;
   * when it runs out of buffered bytes, the position goes back to the last commit, more is read, and
   * `parse` runs again (so it must resume from state it updates only around commits). Parsing this way
   * costs no promise per field.
   */
  async run(parse: () => void): Promise<void> {
    for (;;) {
      this.committed = this.pos;
      try {
        parse();
        return;
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        this.pos = this.committed;
        await this.ensure(e.upTo - this.pos);
      }
    }
  }

  /** Marks the end of a complete item inside `run`. */
  commit(): void {
    this.committed = this.pos;
  }

  /** One synchronous read inside its own `run`. */
  async read<T>(parse: () => T): Promise<T> {
    let value: T | undefined;
    await this.run(() => {
      value = parse();
    });
    return value as T;
  }

  bytes(n: number): Buffer {
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  /** Moves past `n` bytes without reading them (bounds-checked). */
  skip(n: number): void {
    if (this.pos + n > this.size) throw this.truncated(this.pos + n);
    this.pos += n;
  }

  u8(): number { return this.buf[this.take(1)]!; }
  i8(): number { return this.buf.readInt8(this.take(1)); }
  u16(): number { return this.buf.readUInt16LE(this.take(2)); }
  i16(): number { return this.buf.readInt16LE(this.take(2)); }
  u32(): number { return this.buf.readUInt32LE(this.take(4)); }
  i32(): number { return this.buf.readInt32LE(this.take(4)); }
  f32(): number { return this.buf.readFloatLE(this.take(4)); }
  f64(): number { return this.buf.readDoubleLE(this.take(8)); }
  u64(): bigint { return this.buf.readBigUInt64LE(this.take(8)); }
  i64(): bigint { return this.buf.readBigInt64LE(this.take(8)); }

  /**
   * A u64 count or length that must fit the rest of the file, given that each unit takes at least
   * `minUnitBytes` bytes; `what` names it in the error.
   */
  length(what: string, minUnitBytes: number): number {
    const at = this.pos;
    const n = this.u64();
    if (n * BigInt(minUnitBytes) > BigInt(this.remaining)) {
      throw this.invalid(
        `is truncated or corrupt: its ${what} ${n} at byte ${at} needs more than the ${this.remaining} bytes left`,
        { offset: at, value: n.toString() },
      );
    }
    return Number(n);
  }

  /** A GGUF string: u64 byte length, then UTF-8 bytes. */
  string(what = "string length"): string {
    const at = this.pos;
    const n = this.length(what, 1);
    if (n > MAX_STRING_BYTES) {
      throw this.invalid(`has a string of ${n} bytes at byte ${at}, over the ${MAX_STRING_BYTES}-byte limit`, { offset: at });
    }
    return this.decoder.decode(this.bytes(n));
  }

  /** Skips a GGUF string without decoding it. */
  skipString(): void {
    this.skip(this.length("string length", 1));
  }
}

/** Thrown inside `run` when bytes up to absolute position `upTo` are needed but not buffered. */
class NeedMore {
  constructor(readonly upTo: number) {}
}
