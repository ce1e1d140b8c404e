import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { readGgufInfo, type GgufArraySummary } from "../../builder/gguf.js";
import { humanNumber, FILE_TYPE_NAMES } from "../../builder/gguf-format.js";
import { BuildError } from "../../core/errors.js";
import { TINY, TINY_Q8_0, llamaParameterCount, writeLlamaGguf, writeLoraAdapterGguf } from "../../fixtures/gguf/index.js";
import { ByteWriter, GGUF_MAGIC } from "../../fixtures/gguf/encode.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-gguf-reader-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Asserts that reading `path` fails with GGUF_INVALID and a message naming the path matching `re`. */
async function rejectsInvalid(path: string, re?: RegExp): Promise<void> {
  await assert.rejects(readGgufInfo(path), (e: unknown) => {
    assert.ok(e instanceof BuildError, `a BuildError, got ${String(e)}`);
    assert.equal(e.code, "GGUF_INVALID", e.message);
    assert.ok(e.message.startsWith(path), e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe("readGgufInfo: the writer's models", () => {
  test("F16 tiny model: header, metadata, tensors, summary fields", async () => {
    const p = join(dir, "tiny.gguf");
    await writeLlamaGguf(p, TINY);
    const info = await readGgufInfo(p);
    assert.equal(info.version, 3);
    assert.equal(info.architecture, "llama");
    assert.equal(info.fileType, "F16");
    assert.equal(info.parameterCount, llamaParameterCount(TINY));
    assert.equal(info.modelType, humanNumber(llamaParameterCount(TINY)));
    assert.equal(info.modelType, "140K");
    assert.equal(info.tensorCount, 3 + 9 * TINY.blockCount);
    assert.equal(info.tensors.length, info.tensorCount);
    assert.equal(info.alignment, 32);
    const m = info.metadata;
    assert.equal(m["general.name"], "mf-tiny");
    assert.equal(m["llama.embedding_length"], 64);
    assert.equal(m["llama.attention.head_count_kv"], 2);
    assert.ok(Math.abs((m["llama.attention.layer_norm_rms_epsilon"] as number) - 1e-5) < 1e-10);
    assert.equal(m["tokenizer.ggml.add_bos_token"], false);
    assert.match(m["tokenizer.chat_template"] as string, /<\|im_start\|>/);
    assert.deepEqual(m["tokenizer.ggml.tokens"], { itemType: "string", length: 512 } satisfies GgufArraySummary);
    assert.deepEqual(m["tokenizer.ggml.token_type"], { itemType: "i32", length: 512 });
    const k = info.tensors.find((t) => t.name === "blk.0.attn_k.weight")!;
    assert.deepEqual(k.dims, [64, 32]);
    assert.equal(k.typeName, "F16");
    assert.equal(k.elements, 2048);
    assert.ok(info.tensors.every((t) => t.offset % 32 === 0));

    const hf = await gguf(p, { allowLocalFile: true });
    assert.equal(BigInt(info.dataOffset), hf.tensorDataOffset);
    assert.deepEqual(
      info.tensors.map((t) => [t.name, t.dims, t.type, t.offset]),
      hf.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype, Number(t.offset)]),
    );
  });

  test("keepArraysUpTo keeps token arrays when asked", async () => {
    const p = join(dir, "tiny-keep.gguf");
    await writeLlamaGguf(p, TINY);
    const info = await readGgufInfo(p, undefined, { keepArraysUpTo: 100_000 });
    const tokens = info.metadata["tokenizer.ggml.tokens"] as string[];
    assert.equal(tokens.length, 512);
    assert.equal(tokens[32], "Ġ");
    assert.equal(tokens.at(-1), "<|im_end|>");
    assert.ok((info.metadata["tokenizer.ggml.merges"] as string[]).includes("Ġ t"));
  });

  test("Q8_0: file type from general.file_type, or derived from the tensors when absent", async () => {
    const a = join(dir, "q8.gguf");
    const b = join(dir, "q8-noft.gguf");
    await writeLlamaGguf(a, TINY_Q8_0);
    await writeLlamaGguf(b, { ...TINY_Q8_0, omitMetadata: ["general.file_type"] });
    assert.equal((await readGgufInfo(a)).fileType, "Q8_0");
    const info = await readGgufInfo(b);
    assert.equal(info.fileType, "Q8_0", "the matrices are Q8_0 even though the norms are F32");
    assert.equal(info.metadata["general.file_type"], undefined);
  });

  test("general.file_type names follow llama.cpp", async () => {
    const cases: [number, string][] = [[0, "F32"], [2, "Q4_0"], [7, "Q8_0"], [10, "Q2_K"], [12, "Q3_K_M"], [15, "Q4_K_M"], [17, "Q5_K_M"], [18, "Q6_K"], [32, "BF16"], [9999, "unknown(9999)"]];
    for (const [id, name] of cases) {
      const p = join(dir, `ft-${id}.gguf`);
      await writeLlamaGguf(p, { ...TINY, extraMetadata: { "general.file_type": id } });
      assert.equal((await readGgufInfo(p)).fileType, name);
    }
    assert.equal(FILE_TYPE_NAMES.get(14), "Q4_K_S");
  });

  test("a LoRA adapter reads as an adapter with its architecture", async () => {
    const p = join(dir, "lora.gguf");
    await writeLoraAdapterGguf(p, { base: TINY, rank: 8, seed: 1 });
    const info = await readGgufInfo(p);
    assert.equal(info.architecture, "llama");
    assert.equal(info.metadata["general.type"], "adapter");
    assert.equal(info.metadata["adapter.type"], "lora");
    assert.equal(info.fileType, "F32");
    assert.equal(info.tensorCount, TINY.blockCount * 4);
  });

  test("GGUF v2 files are accepted", async () => {
    const p = join(dir, "v2.gguf");
    await writeLlamaGguf(p, TINY);
    const bytes = await readFile(p);
    bytes.writeUInt32LE(2, 4);
    await writeFile(p, bytes);
    assert.equal((await readGgufInfo(p)).version, 2);
  });
});

describe("readGgufInfo: files that are not (valid) GGUF", () => {
  test("bad magic names the path and shows the bytes", async () => {
    const p = join(dir, "model.zip");
    await writeFile(p, Buffer.from("PK\x03\x04 this is a zip file, not a model", "latin1"));
    await rejectsInvalid(p, /is not a GGUF file \(magic "PK\\x03\\x04"\)/);
  });

  test("empty, tiny, directory and missing files", async () => {
    const empty = join(dir, "empty.gguf");
    await writeFile(empty, "");
    await rejectsInvalid(empty, /is empty/);
    const short = join(dir, "short.gguf");
    await writeFile(short, "GG");
    await rejectsInvalid(short, /truncated/);
    await rejectsInvalid(dir, /not a regular file/);
    await assert.rejects(readGgufInfo(join(dir, "nope.gguf")), { code: "FILE_NOT_FOUND" });
  });

  test("unsupported versions", async () => {
    const p = join(dir, "version.gguf");
    await writeLlamaGguf(p, TINY);
    const bytes = await readFile(p);
    for (const [v, hint] of [[1, /v1 is no longer supported/], [4, /unsupported GGUF version 4/], [0x03000000, /big-endian/]] as const) {
      bytes.writeUInt32LE(v, 4);
      await writeFile(p, bytes);
      await rejectsInvalid(p, hint);
    }
  });

  test("every truncation point gives GGUF_INVALID, never a crash", async () => {
    const p = join(dir, "trunc.gguf");
    await writeLlamaGguf(p, { ...TINY, vocabSize: 260, blockCount: 1, chatTemplate: null });
    const info = await readGgufInfo(p);
    const size = info.fileSize;
    // Every byte of the header and padding, then every 1021st byte of the data (truncate shrinks in place).
    const cuts: number[] = [];
    for (let cut = size - 1; cut > info.dataOffset; cut -= 1021) cuts.push(cut);
    for (let cut = info.dataOffset; cut >= 0; cut--) cuts.push(cut);
    for (const cut of cuts) {
      await truncate(p, cut);
      await assert.rejects(readGgufInfo(p), (e: unknown) => {
        assert.ok(e instanceof BuildError && e.code === "GGUF_INVALID", `cut at ${cut}: ${String(e)}`);
        assert.match(e.message, cut === 0 ? /is empty/ : /is truncated/, `cut at ${cut}`);
        return true;
      });
    }
    assert.ok(cuts.length > info.dataOffset);
  });

  test("an abort signal stops the read", async () => {
    const p = join(dir, "abort.gguf");
    await writeLlamaGguf(p, TINY);
    await assert.rejects(readGgufInfo(p, AbortSignal.abort()), { name: "AbortError" });
  });
});

/** A hand-made header: magic, version 3, counts, then whatever `body` writes. */
function header(tensors: bigint, kvs: bigint, body: (w: ByteWriter) => void): Buffer {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors);
  w.u64(kvs);
  body(w);
  return Buffer.from(w.toBuffer());
}

describe("readGgufInfo: hostile and malformed headers", () => {
  const U32 = 4;
  const STRING = 8;
  const ARRAY = 9;
  const cases: [string, Buffer, RegExp][] = [
    ["absurd tensor count", header(1n << 62n, 0n, () => {}), /truncated or corrupt: its tensor count/],
    ["absurd kv count", header(0n, 0xffffffffffffffffn, () => {}), /truncated or corrupt: its metadata count/],
    ["absurd key length", header(0n, 1n, (w) => { w.u64(1n << 63n); w.bytes(new Uint8Array(16)); }), /truncated or corrupt: its key length/],
    ["absurd string value length", header(0n, 1n, (w) => { w.string("k"); w.u32(STRING); w.u64(1n << 40n); }), /truncated or corrupt: its string length/],
    ["absurd u32 array length", header(0n, 1n, (w) => { w.string("k"); w.u32(ARRAY); w.u32(U32); w.u64(1n << 40n); }), /truncated or corrupt: its array length for k/],
    ["absurd string array length", header(0n, 1n, (w) => { w.string("k"); w.u32(ARRAY); w.u32(STRING); w.u64(1n << 33n); }), /its array length for k 8589934592/],
    ["unknown value type", header(0n, 1n, (w) => { w.string("k"); w.u32(99); w.u32(0); }), /unknown value type 99/],
    ["unknown array item type", header(0n, 1n, (w) => { w.string("k"); w.u32(ARRAY); w.u32(42); w.u64(1n); }), /unknown value type 42/],
    ["deeply nested arrays", header(0n, 1n, (w) => { w.string("k"); w.u32(ARRAY); for (let i = 0; i < 6; i++) { w.u32(ARRAY); w.u64(1n); } }), /nests arrays/],
    ["duplicate key", header(0n, 2n, (w) => { for (let i = 0; i < 2; i++) { w.string("k"); w.u32(U32); w.u32(1); } }), /duplicate metadata key "k"/],
    ["bad alignment", header(0n, 1n, (w) => { w.string("general.alignment"); w.u32(U32); w.u32(24); }), /general.alignment 24/],
    ["too many dims", header(1n, 0n, (w) => { w.string("t"); w.u32(5); for (let i = 0; i < 5; i++) w.u64(1n); w.u32(0); w.u64(0n); }), /5 dimensions/],
    ["huge dims", header(1n, 0n, (w) => { w.string("t"); w.u32(2); w.u64(1n << 40n); w.u64(1n << 40n); w.u32(0); w.u64(0n); }), /impossible element count/],
    ["misaligned offset", header(1n, 0n, (w) => { w.string("t"); w.u32(1); w.u64(4n); w.u32(0); w.u64(3n); }), /bad data offset 3/],
    ["duplicate tensor", header(2n, 0n, (w) => { for (let i = 0; i < 2; i++) { w.string("t"); w.u32(1); w.u64(4n); w.u32(0); w.u64(0n); } }), /duplicate tensor "t"/],
    ["rows not whole blocks", header(1n, 0n, (w) => { w.string("t"); w.u32(2); w.u64(16n); w.u64(2n); w.u32(8); w.u64(0n); w.pad(32); w.bytes(new Uint8Array(64)); }), /not a multiple of 32 \(Q8_0\)/],
    ["tensor data past the end", header(1n, 0n, (w) => { w.string("t"); w.u32(1); w.u64(1000n); w.u32(0); w.u64(0n); w.pad(32); w.bytes(new Uint8Array(100)); }), /truncated: tensor "t" ends at byte/],
  ];
  for (const [what, bytes, re] of cases) {
    test(what, async () => {
      const p = join(dir, "hostile.gguf");
      await writeFile(p, bytes);
      await rejectsInvalid(p, re);
    });
  }

  test("a large metadata array is skipped and summarised, not kept", async () => {
    const p = join(dir, "bigarray.gguf");
    const bytes = header(0n, 2n, (w) => {
      w.string("big");
      w.u32(ARRAY);
      w.u32(U32);
      w.u64(200_000n);
      w.bytes(new Uint8Array(800_000));
      w.string("after");
      w.u32(STRING);
      w.string("still read");
    });
    await writeFile(p, bytes);
    const info = await readGgufInfo(p);
    assert.deepEqual(info.metadata["big"], { itemType: "u32", length: 200_000 });
    assert.equal(info.metadata["after"], "still read");
    assert.equal(info.parameterCount, 0);
    assert.equal(info.modelType, "0");
    assert.equal(info.architecture, "");
  });
});

describe("humanNumber matches Ollama's format.HumanNumber", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [999, "999"],
    [1000, "1K"],
    [1499, "1K"],
    [1500, "2K"],
    [2500, "2K"], // exact tie rounds to even, as Go's fmt does
    [139_584, "140K"],
    [999_999, "1000K"],
    [1_000_000, "1M"],
    [1_125_000, "1.12M"], // exact tie → even
    [1_375_000, "1.38M"],
    [22_570_000, "22.57M"],
    [125_000_000, "125M"],
    [137_000_000, "137M"],
    [200_827_904, "200.83M"],
    [500_500_000, "500.50M"],
    [500_550_000, "500.55M"],
    [1_000_000_000, "1B"],
    [2_250_000_000, "2.2B"], // exact tie → even
    [2_800_000_000, "2.8B"],
    [2_850_000_000, "2.9B"],
    [3_212_749_824, "3.2B"],
    [8_000_000_000, "8B"],
    [8_030_261_248, "8.0B"],
    [70_553_706_496, "70.6B"],
    [1_000_000_000_000, "1000B"],
  ];
  for (const [n, s] of cases) {
    test(`${n} → ${s}`, () => assert.equal(humanNumber(n), s));
  }
});
