/**
 * DRAFT in the builder: the draft layer and the config's `draft` field as Ollama writes them, the Modelfile
 * that `show --modelfile` prints for it, inheritance through FROM a model name, and Ollama's validations
 * (and mf's) as Modelfile errors with their line and column.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile, ModelfileBuildError } from "../../builder/build.js";
import { describeModel, draftDetails, modelfileOf } from "../../builder/describe.js";
import { digestFile } from "../../core/digest.js";
import { MediaType } from "../../core/mediatypes.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { parseModelfile } from "../../grammar/modelfile/index.js";
import { BIGRAM_DRAFT, BIGRAM_TARGET, TINY, writeLlamaGguf, writeLoraAdapterGguf } from "../../fixtures/gguf/index.js";
import { snapshot, withTmp } from "../helpers/tmp.js";

async function context(dir: string): Promise<string> {
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await writeLlamaGguf(join(ctx, "target.gguf"), BIGRAM_TARGET);
  await writeLlamaGguf(join(ctx, "draft.gguf"), BIGRAM_DRAFT);
  return ctx;
}

async function build(store: LocalStore, ctx: string, tag: string, modelfile: string) {
  const file = join(ctx, `${tag.replace(/\W/g, "_")}.modelfile`);
  await writeFile(file, modelfile);
  return buildFromModelfile(file, { store, tags: [parseRef(tag)], contextDir: ctx, homeDir: ctx });
}

const config = async (store: LocalStore, digest: string) => JSON.parse((await store.readBlob(digest)).toString()) as Record<string, unknown>;

/** The build's rejection as `line:column message` of its first error. */
async function firstError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ModelfileBuildError, String(e));
    const d = e.diagnostics.find((x) => x.severity === "error")!;
    assert.ok(e.message.includes(`:${d.line}:${d.column}: `), `the message names the position: ${e.message}`);
    return `${d.line}:${d.column} ${d.message}`;
  }
  assert.fail("the build succeeded");
}

test("DRAFT stores the draft GGUF as a draft layer and names it in the config's draft field", async () => {
  await withTmp("draft-layer", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const r = await build(store, ctx, "fast", "FROM ./target.gguf\nDRAFT ./draft.gguf\nPARAMETER draft_num_predict 6\n");
    assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), [MediaType.model, "application/vnd.ollama.image.draft", MediaType.params]);
    assert.equal(r.manifest.layers[1]!.digest, await digestFile(join(ctx, "draft.gguf")));
    const c = await config(store, r.manifest.config.digest);
    assert.deepEqual(c.draft, { model_format: "gguf", architecture: "llama" });
    assert.deepEqual(Object.keys(c), ["model_format", "model_family", "model_families", "model_type", "file_type", "draft", "architecture", "os"]);
    assert.equal((await store.readBlob(r.manifest.layers[2]!.digest)).toString(), '{"draft_num_predict":6}');

    // without DRAFT, nothing of it: the config keeps its fields
    const plain = await build(store, ctx, "plain", "FROM ./target.gguf\n");
    assert.equal((await config(store, plain.manifest.config.digest)).draft, undefined);
    assert.deepEqual(plain.manifest.layers.map((l) => l.mediaType), [MediaType.model]);
  });
});

test("show --modelfile prints DRAFT with the draft blob, and that Modelfile builds the same image", async () => {
  await withTmp("draft-show", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const first = await build(store, ctx, "fast", "FROM ./target.gguf\nDRAFT ./draft.gguf\nPARAMETER draft_num_predict 3\n");
    const d = await describeModel(store, await store.readModel("fast"));
    const text = modelfileOf(d);
    const draftBlob = store.blobPath(first.manifest.layers[1]!.digest);
    assert.match(text, new RegExp(`^FROM \\S+\\nDRAFT ${draftBlob.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\nPARAMETER draft_num_predict 3\\n$`, "m"));
    const parsed = parseModelfile(text);
    assert.deepEqual(parsed.diagnostics, []);
    assert.deepEqual(parsed.ast.commands.filter((c) => c.kind === "draft").map((c) => (c as { value: string }).value), [draftBlob]);
    await writeFile(join(dir, "Regenerated"), text);
    const again = await buildFromModelfile(join(dir, "Regenerated"), { store, tags: [parseRef("again")], contextDir: dir, homeDir: dir });
    assert.equal(again.digest, first.digest);

    const details = await draftDetails(d);
    assert.deepEqual({ ...details, parameter_size: undefined }, {
      digest: first.manifest.layers[1]!.digest, size: first.manifest.layers[1]!.size, format: "gguf", family: "llama", parameter_size: undefined, quantization_level: "F16",
    });
    assert.match(details!.parameter_size, /^\d+(\.\d+)?K$/);
  });
});

test("FROM a model with a draft carries the draft layer and the config's draft over; a new DRAFT replaces it", async () => {
  await withTmp("draft-inherit", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const base = await build(store, ctx, "fast", "FROM ./target.gguf\nDRAFT ./draft.gguf\n");
    const child = await build(store, ctx, "child", "FROM fast\nSYSTEM be quick\n");
    assert.deepEqual(child.manifest.layers[1], { ...base.manifest.layers[1]!, from: "library/fast" });
    assert.deepEqual((await config(store, child.manifest.config.digest)).draft, { model_format: "gguf", architecture: "llama" });

    await writeLlamaGguf(join(ctx, "draft2.gguf"), { ...BIGRAM_DRAFT, seed: 12 });
    const replaced = await build(store, ctx, "other", "FROM fast\nDRAFT ./draft2.gguf\n");
    const drafts = replaced.manifest.layers.filter((l) => l.mediaType === MediaType.draft);
    assert.deepEqual(drafts.map((l) => l.digest), [await digestFile(join(ctx, "draft2.gguf"))]);
    assert.equal(drafts[0]!.from, undefined);
  });
});

test("DRAFT must not reference the same local path as FROM, however it is spelled, and in either order", async () => {
  await withTmp("draft-same", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    await mkdir(join(ctx, "sub"));
    await symlink(join(ctx, "target.gguf"), join(ctx, "link.gguf"));
    assert.equal(
      await firstError(build(store, ctx, "a", "FROM ./target.gguf\nDRAFT ./target.gguf\n")),
      "2:7 DRAFT must not reference the same local path as FROM: ./target.gguf",
    );
    assert.equal(
      await firstError(build(store, ctx, "b", "# first the draft\nDRAFT   ./sub/../target.gguf\nFROM ./target.gguf\n")),
      "2:9 DRAFT must not reference the same local path as FROM: ./sub/../target.gguf",
    );
    assert.equal(
      await firstError(build(store, ctx, "c", `FROM ${join(ctx, "target.gguf")}\nDRAFT ./link.gguf\n`)),
      "2:7 DRAFT must not reference the same local path as FROM: ./link.gguf",
    );
    // a blob named twice is one file too
    const blob = (await build(store, ctx, "plain", "FROM ./target.gguf\n")).manifest.layers[0]!.digest;
    assert.equal(await firstError(build(store, ctx, "d", `FROM ${blob}\nDRAFT ${blob}\n`)), `2:7 DRAFT must not reference the same local path as FROM: ${blob}`);
    // a copy is another path (Ollama compares paths, not contents)
    await copyFile(join(ctx, "draft.gguf"), join(ctx, "copy.gguf"));
    await build(store, ctx, "e", "FROM ./target.gguf\nDRAFT ./copy.gguf\n");
  });
});

test("DRAFT errors name their line and column: a model name, a missing file, an adapter, another vocabulary; the store is unchanged", async () => {
  await withTmp("draft-bad", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    await build(store, ctx, "existing", "FROM ./target.gguf\n");
    const before = await snapshot(store.root);
    await writeLoraAdapterGguf(join(ctx, "lora.gguf"), { base: BIGRAM_TARGET, rank: 4, seed: 1 });
    await writeLlamaGguf(join(ctx, "tiny.gguf"), { ...TINY, vocabSize: 1024 });
    await writeFile(join(ctx, "notgguf.gguf"), "PK\u0003\u0004 zip");
    const cases: [string, string | RegExp][] = [
      ["FROM ./target.gguf\nDRAFT llama3.2:1b\n", '2:7 no such draft file "llama3.2:1b"'],
      ["FROM ./target.gguf\nDRAFT ./missing.gguf\n", '2:7 no such file "./missing.gguf"'],
      ["FROM ./target.gguf\nDRAFT ./lora.gguf\n", '2:7 "./lora.gguf" is a LoRA adapter, not a model'],
      ["FROM ./target.gguf\nDRAFT ./notgguf.gguf\n", /^2:7 .*not a GGUF/i],
      ["FROM ./target.gguf\n\nDRAFT ./tiny.gguf\n", /^3:7 DRAFT cannot draft for this model: its (bos|eos)_token_id is \d+, the model's \d+$/],
      ["FROM ./target.gguf\nDRAFT sha256:" + "a".repeat(64) + "\n", `2:7 blob sha256:${"a".repeat(64)} is not in the store`],
    ];
    for (const [modelfile, expect] of cases) {
      const got = await firstError(build(store, ctx, "broken", modelfile));
      if (typeof expect === "string") assert.equal(got, expect);
      else assert.match(got, expect);
    }
    assert.deepEqual(await snapshot(store.root), before);
  });
});

test("a server without a create root reads no DRAFT file; one with a root reads only inside it", async () => {
  await withTmp("draft-server", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const { buildImage } = await import("../../builder/build.js");
    const ast = parseModelfile("FROM ./target.gguf\nDRAFT ./draft.gguf\n").ast;
    const resolve = (fileRoot: string | null) => ({ baseDir: ctx, contextDir: ctx, homeDir: dir, fileRoot });
    await assert.rejects(buildImage(ast, { store, tags: [parseRef("x")], resolve: resolve(null) }), /names a file on the server, and this server reads none/);
    const r = await buildImage(ast, { store, tags: [parseRef("x")], resolve: resolve(ctx) });
    assert.equal(r.manifest.layers[1]!.mediaType, MediaType.draft);
    const outside = parseModelfile(`FROM ./target.gguf\nDRAFT ${join(dir, "elsewhere.gguf")}\n`).ast;
    await assert.rejects(buildImage(outside, { store, tags: [parseRef("y")], resolve: resolve(ctx) }), /outside the directory this server reads/);
  });
});
