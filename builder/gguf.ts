/**
 * Reads a GGUF file's header (metadata and tensor infos) with positioned reads, never the whole file,
 * and summarises it for the image config: architecture, parameter count, file type, model type.
 * Anything that is not a well-formed GGUF v2/v3 header is a BuildError with code GGUF_INVALID.
 */
import { open } from "node:fs/promises";
import { BuildError } from "../core/errors.js";
import { GgufHeaderReader, type PositionedSource } from "./gguf-reader.js";
import {
  FILE_TYPE_NAMES,
  GGML_TYPES,
  GGUF_FIXED_SIZE,
  GGUF_VALUE_TYPES,
  fileTypeFromTensorType,
  ggmlTypeName,
  humanNumber,
  type GgufValueType,
} from "./gguf-format.js";

export { humanNumber, formatFixedGo, ggmlTypeName } from "./gguf-format.js";
export type { GgufValueType } from "./gguf-format.js";
export type { PositionedSource } from "./gguf-reader.js";

/** An array too long to keep: its item type and length only. */
export interface GgufArraySummary {
  readonly itemType: GgufValueType;
  readonly length: number;
}

/** u64/i64 values are numbers when exactly representable, bigints otherwise. */
export type GgufScalar = number | bigint | string | boolean;
export type GgufValue = GgufScalar | GgufValue[] | GgufArraySummary;

export interface GgufTensor {
  name: string;
  /** GGML ne[]: dims[0] is the row length. */
  dims: number[];
  /** GGML type id and its name ("F16", "Q4_K", … or "unknown(N)"). */
  type: number;
  typeName: string;
  /** Offset of the data from the start of the data section. */
  offset: number;
  elements: number;
}

export interface GgufInfo {
  version: number;
  tensorCount: number;
  metadata: Record<string, GgufValue>;
  tensors: GgufTensor[];
  /** general.architecture, or "" when absent. */
  architecture: string;
  /** Sum of the element counts of all tensors. */
  parameterCount: number;
  /** llama.cpp's name for general.file_type ("Q4_K_M"), or derived from the dominant tensor type. */
  fileType: string;
  /** The parameter count as Ollama prints it ("8.0B", "137M"). */
  modelType: string;
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
  fileSize: number;
}

export interface ReadGgufOptions {
  /** Arrays longer than this are returned as a GgufArraySummary (default 256). */
  keepArraysUpTo?: number;
}

const MAX_DIMS = 4; // GGML_MAX_DIMS
const MAX_NESTING = 4;

function toNumberish(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function valueType(r: GgufHeaderReader, what: string): GgufValueType {
  const at = r.pos;
  const id = r.u32();
  const type = GGUF_VALUE_TYPES[id];
  if (type === undefined) throw r.invalid(`has an unknown value type ${id} for ${what} at byte ${at}`, { offset: at });
  return type;
}

function readScalar(r: GgufHeaderReader, type: Exclude<GgufValueType, "array">): GgufScalar {
  switch (type) {
    case "u8": return r.u8();
    case "i8": return r.i8();
    case "u16": return r.u16();
    case "i16": return r.i16();
    case "u32": return r.u32();
    case "i32": return r.i32();
    case "f32": return r.f32();
    case "f64": return r.f64();
    case "bool": return r.u8() !== 0;
    case "string": return r.string();
    case "u64": return toNumberish(r.u64());
    case "i64": return toNumberish(r.i64());
  }
}

/** An array value (after its type id): kept when at most `keepUpTo` long, else skipped and summarised. */
async function readArray(r: GgufHeaderReader, key: string, keepUpTo: number, depth: number): Promise<GgufValue> {
  if (depth >= MAX_NESTING) throw r.invalid(`nests arrays deeper than ${MAX_NESTING} levels in ${key}`);
  const itemType = await r.read(() => valueType(r, key));
  const minItem = GGUF_FIXED_SIZE[itemType] ?? (itemType === "string" ? 8 : 12);
  const length = await r.read(() => r.length(`array length for ${key}`, minItem));
  const keep = length <= keepUpTo;
  const items: GgufValue[] = [];
  if (itemType === "array") {
    for (let i = 0; i < length; i++) {
      const v = await readArray(r, key, keep ? keepUpTo : 0, depth + 1);
      if (keep) items.push(v);
    }
  } else if (!keep && GGUF_FIXED_SIZE[itemType] !== undefined) {
    r.skip(GGUF_FIXED_SIZE[itemType]! * length);
  } else {
    let i = 0;
    while (i < length) {
      await r.run(() => {
        for (; i < length; i++) {
          if (keep) items.push(readScalar(r, itemType));
          else r.skipString();
          r.commit();
        }
      });
    }
  }
  return keep ? items : { itemType, length };
}

/** Bytes as a readable literal: printable ASCII as is, the rest as \\xNN. */
function showBytes(b: Uint8Array): string {
  let out = "";
  for (const c of b) {
    out += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return out;
}

async function readHeader(r: GgufHeaderReader, options: ReadGgufOptions): Promise<GgufInfo> {
  const magic = Buffer.from(await r.read(() => r.bytes(Math.min(4, r.size))));
  if (magic.toString("latin1") !== "GGUF".slice(0, magic.length)) {
    throw r.invalid(`is not a GGUF file (magic "${showBytes(magic)}")`, { magic: magic.toString("hex") });
  }
  if (r.size < 4) throw r.size === 0 ? r.invalid("is empty, not a GGUF file") : r.truncated(4);
  const version = await r.read(() => r.u32());
  if (version !== 2 && version !== 3) {
    const hint = version === 1 ? " (GGUF v1 is no longer supported)" : (version & 0xffff) === 0 ? " (a big-endian file?)" : "";
    throw r.invalid(`has unsupported GGUF version ${version}${hint}; versions 2 and 3 are supported`, { version });
  }
  const tensorCount = await r.read(() => r.length("tensor count", 24));
  const kvCount = await r.read(() => r.length("metadata count", 13));
  const keepUpTo = options.keepArraysUpTo ?? 256;

  const metadata: Record<string, GgufValue> = Object.create(null);
  let kv = 0;
  while (kv < kvCount) {
    let arrayKey: string | undefined;
    await r.run(() => {
      for (; kv < kvCount; kv++) {
        const key = r.string("key length");
        if (Object.hasOwn(metadata, key)) throw r.invalid(`has duplicate metadata key ${JSON.stringify(key)}`);
        const type = valueType(r, key);
        if (type === "array") {
          arrayKey = key; // read asynchronously below, from the current position
          return;
        }
        metadata[key] = readScalar(r, type);
        r.commit();
      }
    });
    if (arrayKey !== undefined) {
      metadata[arrayKey] = await readArray(r, arrayKey, keepUpTo, 0);
      kv++;
    }
  }

  const alignValue = metadata["general.alignment"];
  const alignment = alignValue === undefined ? 32 : alignValue;
  if (typeof alignment !== "number" || !Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw r.invalid(`has an invalid general.alignment ${String(alignValue)}: it must be a power of two`);
  }

  const tensors: GgufTensor[] = [];
  const names = new Set<string>();
  while (tensors.length < tensorCount) {
    await r.run(() => {
      while (tensors.length < tensorCount) {
        const t = readTensorInfo(r, alignment);
        if (names.has(t.name)) throw r.invalid(`has duplicate tensor ${JSON.stringify(t.name)}`);
        names.add(t.name);
        tensors.push(t);
        r.commit();
      }
    });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  checkTensorData(r, tensors, dataOffset);

  const arch = metadata["general.architecture"];
  const parameterCount = tensors.reduce((s, t) => s + t.elements, 0);
  return {
    version,
    tensorCount,
    metadata,
    tensors,
    architecture: typeof arch === "string" ? arch : "",
    parameterCount,
    fileType: fileTypeOf(metadata, tensors),
    modelType: humanNumber(parameterCount),
    alignment,
    dataOffset,
    fileSize: r.size,
  };
}

function readTensorInfo(r: GgufHeaderReader, alignment: number): GgufTensor {
  const name = r.string("tensor name length");
  const nDims = r.u32();
  if (nDims > MAX_DIMS) throw r.invalid(`has tensor ${JSON.stringify(name)} with ${nDims} dimensions (at most ${MAX_DIMS})`);
  const dims: number[] = [];
  let elements = 1;
  for (let d = 0; d < nDims; d++) {
    const n = r.u64();
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw r.invalid(`has tensor ${JSON.stringify(name)} with an impossible dimension ${n}`);
    dims.push(Number(n));
    elements *= Number(n);
  }
  if (!Number.isSafeInteger(elements)) throw r.invalid(`has tensor ${JSON.stringify(name)} with an impossible element count`);
  const type = r.u32();
  const offset = r.u64();
  if (offset > BigInt(Number.MAX_SAFE_INTEGER) || Number(offset) % alignment !== 0) {
    throw r.invalid(`has tensor ${JSON.stringify(name)} at a bad data offset ${offset}`);
  }
  return { name, dims, type, typeName: ggmlTypeName(type), offset: Number(offset), elements };
}

/** Every tensor of a known type must have whole blocks per row and its data inside the file. */
function checkTensorData(r: GgufHeaderReader, tensors: GgufTensor[], dataOffset: number): void {
  if (tensors.length > 0 && dataOffset > r.size) throw r.truncated(dataOffset);
  for (const t of tensors) {
    const start = dataOffset + t.offset;
    if (start > r.size) {
      throw r.invalid(`is truncated: tensor ${JSON.stringify(t.name)} starts at byte ${start} but the file ends at byte ${r.size}`, {
        needed: start,
        size: r.size,
      });
    }
    const info = GGML_TYPES.get(t.type);
    if (!info) continue;
    const rowLength = t.dims[0] ?? 1;
    if (rowLength % info.blockElements !== 0) {
      throw r.invalid(`has tensor ${JSON.stringify(t.name)} whose row length ${rowLength} is not a multiple of ${info.blockElements} (${info.name})`);
    }
    const end = start + (t.elements / info.blockElements) * info.blockBytes;
    if (end > r.size) {
      throw r.invalid(`is truncated: tensor ${JSON.stringify(t.name)} ends at byte ${end} but the file ends at byte ${r.size}`, {
        needed: end,
        size: r.size,
      });
    }
  }
}

function fileTypeOf(metadata: Record<string, GgufValue>, tensors: GgufTensor[]): string {
  const ft = metadata["general.file_type"];
  if (typeof ft === "number") return FILE_TYPE_NAMES.get(ft) ?? `unknown(${ft})`;
  // No general.file_type: the type holding most elements among the matrices (norms and biases are F32 anyway).
  const byType = new Map<number, number>();
  for (const t of tensors) {
    if (t.dims.length < 2) continue;
    byType.set(t.type, (byType.get(t.type) ?? 0) + t.elements);
  }
  let best: number | undefined;
  for (const [type, n] of byType) if (best === undefined || n > byType.get(best)!) best = type;
  if (best === undefined) best = tensors[0]?.type;
  return best === undefined ? "unknown" : fileTypeFromTensorType(best);
}

/**
 * Reads the header of the GGUF file at `path`. Not GGUF, an unsupported version, a truncated or
 * malformed header, or tensor data past the end of the file → BuildError GGUF_INVALID; a missing file
 * → BuildError FILE_NOT_FOUND.
 */
export async function readGgufInfo(path: string, signal?: AbortSignal, options: ReadGgufOptions = {}): Promise<GgufInfo> {
  signal?.throwIfAborted();
  let fh;
  try {
    fh = await open(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new BuildError("FILE_NOT_FOUND", `${path}: no such file`, { cause: e, detail: { path } });
    if (code === "EISDIR") throw new BuildError("GGUF_INVALID", `${path} is a directory, not a GGUF file`, { cause: e, detail: { path } });
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new BuildError("GGUF_INVALID", `${path} is not a regular file`, { detail: { path } });
    return await readHeader(new GgufHeaderReader(fh, st.size, path, signal), options);
  } finally {
    await fh.close();
  }
}

/**
 * Reads a GGUF header from any positioned source of `size` bytes (a registry blob read by ranges);
 * `name` stands for the path in messages. The same bounds and errors as readGgufInfo.
 */
export async function readGgufHeader(source: PositionedSource, size: number, name: string, signal?: AbortSignal, options: ReadGgufOptions = {}): Promise<GgufInfo> {
  signal?.throwIfAborted();
  return readHeader(new GgufHeaderReader(source, size, name, signal), options);
}
