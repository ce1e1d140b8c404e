import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile, readFile, copyFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile, ModelfileBuildError } from "../../builder/build.js";
import { describeModel, modelfileOf } from "../../builder/describe.js";
import { LocalStore } from "../../core/store.js";
import { parseRef } from "../../core/reference.js";
import { MediaType } from "../../core/mediatypes.js";
import { digestFile } from "../../core/digest.js";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { snapshot, withTmp } from "../helpers/tmp.js";

const MODELFILE = `FROM ./tiny.gguf
TEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM You are Mario.
PARAMETER temperature 0.5
PARAMETER stop <|im_end|>
PARAMETER stop "<|im_start|>"
PARAMETER num_ctx 256
MESSAGE user hi
MESSAGE assistant hello
LICENSE MIT
LICENSE """second
license"""
`;

async function context(dir: string, modelfile = MODELFILE): Promise<string> {
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
  await writeFile(join(ctx, "Modelfile"), modelfile);
  return ctx;
}

function build(store: LocalStore, ctx: string, tag = "mario", file = join(ctx, "Modelfile"), extra: Record<string, unknown> = {}) {
  return buildFromModelfile(file, { store, tags: [parseRef(tag)], contextDir: ctx, homeDir: ctx, ...extra });
}

test("a Modelfile and a GGUF become an Ollama image", async () => {
  await withTmp("build", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const events: string[] = [];
    const r = await build(store, ctx, "mario", undefined, { onProgress: (e: { status: string }) => events.push(e.status) });
    const m = r.manifest;
    assert.equal(m.mediaType, MediaType.dockerManifest);
    assert.deepEqual(m.layers.map((l) => l.mediaType), [
      MediaType.model, MediaType.template, MediaType.system, MediaType.params, MediaType.messages, MediaType.license, MediaType.license,
    ]);
    assert.equal(m.layers[0]!.digest, await digestFile(join(ctx, "tiny.gguf")));
    const config = JSON.parse((await store.readBlob(m.config.digest)).toString());
    assert.deepEqual(Object.keys(config), ["model_format", "model_family", "model_families", "model_type", "file_type", "architecture", "os"]);
    assert.equal(config.model_family, "llama");
    assert.equal(config.file_type, "F16");
    assert.match(config.model_type, /^\d+(\.\d+)?[KMB]$/);
    const params = JSON.parse((await store.readBlob(m.layers[3]!.digest)).toString());
    assert.deepEqual(params, { num_ctx: 256, stop: ["<|im_end|>", "<|im_start|>"], temperature: 0.5 });
    assert.equal((await store.readBlob(m.layers[4]!.digest)).toString(), '[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]');
    assert.ok(events.includes("writing manifest") && events.at(-1) === "success");
    assert.ok(events.some((e) => e.startsWith("creating new layer sha256:")));
  });
});

test("builds are reproducible across stores and context locations", async () => {
  await withTmp("repro", async (dir) => {
    const ctxA = await context(join(dir, "a"));
    const ctxB = await context(join(dir, "elsewhere", "b"));
    const a = await build(new LocalStore(join(dir, "s1")), ctxA);
    const b = await build(new LocalStore(join(dir, "s2")), ctxB, "other/name:tag");
    assert.equal(a.digest, b.digest);
    assert.ok(a.bytes.equals(b.bytes));
    const again = await build(new LocalStore(join(dir, "s1")), ctxA);
    assert.equal(again.digest, a.digest);
  });
});

test("FROM a model inherits its layers with from, merges parameters, accumulates licenses", async () => {
  await withTmp("inherit", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const base = await build(store, ctx, "team/mario:v1");
    await writeFile(join(ctx, "Child"), `FROM team/mario:v1\nSYSTEM You are Luigi.\nPARAMETER temperature 0.9\nPARAMETER stop END\nLICENSE child license\n`);
    const child = await build(store, ctx, "luigi", join(ctx, "Child"));
    const layers = child.manifest.layers;
    const model = layers.find((l) => l.mediaType === MediaType.model)!;
    assert.equal(model.digest, base.manifest.layers[0]!.digest, "weights are reused, not copied");
    assert.equal(model.from, "team/mario");
    const d = await describeModel(store, await store.readModel("luigi"));
    assert.equal(d.system, "You are Luigi.");
    assert.match(d.template!, /im_start/);
    assert.deepEqual(d.params, { num_ctx: 256, stop: ["END"], temperature: 0.9 });
    assert.deepEqual(d.licenses, ["MIT", "second\nlicense", "child license"]);
    assert.equal(d.messages.length, 2);
    assert.equal(d.details.parent_model, "team/mario");
  });
});

test("a base missing from the store is asked of the injected resolver", async () => {
  await withTmp("resolver", async (dir) => {
    const ctx = await context(dir, "FROM example.com/team/base\n");
    const store = new LocalStore(join(dir, "models"));
    const asked: string[] = [];
    await assert.rejects(
      build(store, ctx, "x", undefined, { resolveBase: async (ref: { host: string }) => { asked.push(ref.host); throw new Error("registry unreachable"); } }),
      (e: ModelfileBuildError) => /registry unreachable/.test(e.message) && e.diagnostics[0]!.line === 1,
    );
    assert.deepEqual(asked, ["example.com"]);
    // a resolver that provides it
    const src = await context(join(dir, "src"));
    const other = new LocalStore(join(dir, "models"));
    const resolveBase = async () => { await build(other, src, "example.com/team/base"); };
    const r = await build(store, ctx, "y", undefined, { resolveBase });
    assert.equal(r.manifest.layers[0]!.from, "team/base");
  });
});

test("FROM sha256: names a blob already in the store", async () => {
  await withTmp("blob", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const first = await build(store, ctx);
    await writeFile(join(ctx, "ByBlob"), `FROM ${first.manifest.layers[0]!.digest}\n`);
    const r = await build(store, ctx, "byblob", join(ctx, "ByBlob"));
    assert.equal(r.manifest.layers[0]!.digest, first.manifest.layers[0]!.digest);
  });
});

for (const [name, modelfile, prepare, expect] of [
  ["a syntax error", "FRM ./tiny.gguf\n", undefined, /1:1.*unknown instruction "FRM"/i],
  ["a missing file", "FROM ./missing.gguf\n", undefined, /1:6.*no such file/],
  ["a file that is not GGUF", "FROM ./notgguf.gguf\n", async (ctx: string) => writeFile(join(ctx, "notgguf.gguf"), "PK\u0003\u0004 zip"), /not a GGUF/i],
  ["a truncated GGUF", "FROM ./trunc.gguf\n", async (ctx: string) => writeFile(join(ctx, "trunc.gguf"), (await readFile(join(ctx, "tiny.gguf"))).subarray(0, 300)), /truncated/i],
  ["a path outside the context", "FROM ../outside.gguf\n", async (ctx: string) => copyFile(join(ctx, "tiny.gguf"), join(ctx, "..", "outside.gguf")), /outside the build context/],
  ["a bad template", "FROM ./tiny.gguf\nTEMPLATE \"{{ if .System }}x\"\n", undefined, /2:\d+.*TEMPLATE/],
  ["a wrongly typed parameter", "FROM ./tiny.gguf\nPARAMETER num_ctx 1.5\n", undefined, /2:\d+.*expected an integer/],
] as const) {
  test(`${name} stops the build and leaves the store unchanged`, async () => {
    await withTmp("bad", async (dir) => {
      const ctx = await context(dir);
      const store = new LocalStore(join(dir, "models"));
      await build(store, ctx, "existing");
      const before = await snapshot(store.root);
      await writeFile(join(ctx, "Bad"), modelfile);
      if (prepare) await prepare(ctx);
      await assert.rejects(build(store, ctx, "broken", join(ctx, "Bad")), (e: ModelfileBuildError) => {
        assert.match(e.message, expect);
        assert.match(e.render(), /\^/, "rendered with a caret");
        return true;
      });
      assert.deepEqual(await snapshot(store.root), before);
    });
  });
}

test("show --modelfile output builds the same image again", async () => {
  await withTmp("roundtrip", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    const first = await build(store, ctx);
    const text = modelfileOf(await describeModel(store, await store.readModel("mario")));
    await writeFile(join(dir, "Regenerated"), text);
    const again = await buildFromModelfile(join(dir, "Regenerated"), { store, tags: [parseRef("again")], contextDir: dir, homeDir: dir });
    assert.equal(again.digest, first.digest);
  });
});
