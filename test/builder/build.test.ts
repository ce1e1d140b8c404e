import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile, readFile, copyFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile, ModelfileBuildError } from "../../builder/build.js";
import { describeModel, modelfileOf } from "../../builder/describe.js";
import { LocalStore } from "../../core/store.js";
import { parseRef } from "../../core/reference.js";
import { MediaType } from "../../core/mediatypes.js";
import { digestFile } from "../../core/digest.js";
import { TINY, writeGguf, writeLlamaGguf, writeLoraAdapterGguf } from "../../fixtures/gguf/index.js";
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

/** The build's rejection, with the first error's position as `line:column` and its message. */
async function firstError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ModelfileBuildError, String(e));
    const d = e.diagnostics.find((x) => x.severity === "error")!;
    return `${d.line}:${d.column} ${d.message}`;
  }
  assert.fail("the build succeeded");
}

test("ADAPTER adds an adapter layer (last one wins), inherited by a child; a model name is refused at its position", async () => {
  await withTmp("adapter", async (dir) => {
    const ctx = await context(dir, "FROM ./tiny.gguf\nADAPTER ./first.gguf\nADAPTER ./lora.gguf\n");
    await writeLoraAdapterGguf(join(ctx, "first.gguf"), { base: TINY, rank: 4, seed: 1 });
    await writeLoraAdapterGguf(join(ctx, "lora.gguf"), { base: TINY, rank: 4, seed: 2 });
    const store = new LocalStore(join(dir, "models"));
    const r = await build(store, ctx);
    assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.adapter]);
    assert.equal(r.manifest.layers[1]!.digest, await digestFile(join(ctx, "lora.gguf")));
    assert.equal(await store.hasBlob(await digestFile(join(ctx, "first.gguf"))), false, "the replaced adapter is not stored");

    await writeFile(join(ctx, "Child"), "FROM mario\nSYSTEM s\n");
    const child = await build(store, ctx, "child", join(ctx, "Child"));
    assert.deepEqual(child.manifest.layers[1], { ...r.manifest.layers[1]!, from: "library/mario" });

    await writeFile(join(ctx, "Bad"), "FROM ./tiny.gguf\nADAPTER llama3\n");
    assert.equal(await firstError(build(store, ctx, "bad", join(ctx, "Bad"))), '2:9 no such adapter file "llama3"');
  });
});

test("FROM paths: ~ and absolute paths may leave the context, relative ones resolve against the Modelfile's directory but may not", async () => {
  await withTmp("paths", async (dir) => {
    const ctx = await context(dir, "FROM ~/weights/w.gguf\n");
    const home = join(dir, "home");
    await mkdir(join(home, "weights"), { recursive: true });
    const outside = join(home, "weights", "w.gguf");
    await copyFile(join(ctx, "tiny.gguf"), outside);
    const store = new LocalStore(join(dir, "models"));
    const opts = (tag: string) => ({ store, tags: [parseRef(tag)], contextDir: ctx, homeDir: home });
    const viaHome = await buildFromModelfile(join(ctx, "Modelfile"), opts("home"));
    assert.equal(viaHome.manifest.layers[0]!.digest, await digestFile(outside));

    await writeFile(join(ctx, "Absolute"), `FROM ${outside}\n`);
    assert.equal((await buildFromModelfile(join(ctx, "Absolute"), opts("abs"))).digest, viaHome.digest);

    await mkdir(join(ctx, "sub"));
    await writeFile(join(ctx, "sub", "Modelfile"), "FROM ../tiny.gguf\n");
    assert.equal((await buildFromModelfile(join(ctx, "sub", "Modelfile"), opts("sub"))).digest, viaHome.digest);

    await symlink(outside, join(ctx, "link.gguf"));
    await writeFile(join(ctx, "Link"), "FROM ./link.gguf\n");
    assert.match(await firstError(buildFromModelfile(join(ctx, "Link"), opts("link"))), /^1:6 "\.\/link\.gguf" is outside the build context/);
  });
});

test("a TEMPLATE error points into the Modelfile at the template's own line and column", async () => {
  await withTmp("tplpos", async (dir) => {
    const ctx = await context(dir);
    const store = new LocalStore(join(dir, "models"));
    for (const [modelfile, at] of [
      ['FROM ./tiny.gguf\nTEMPLATE   "{{ .A }}{{ foo }}"\n', '2:24 invalid TEMPLATE: template: 1:12: function "foo" not defined'],
      ['FROM ./tiny.gguf\nTEMPLATE """x\n  {{ end }}"""\n', "3:3 invalid TEMPLATE: template: 2:3: unexpected {{end}}"],
      ["FROM ./tiny.gguf\nTEMPLATE {{ if .System }}\n", "2:10 invalid TEMPLATE: template: 1:1: unexpected EOF: {{if}} has no {{end}}"],
      ['FROM ./tiny.gguf\nTEMPLATE "😀{{ foo }}"\n', '2:15 invalid TEMPLATE: template: 1:5: function "foo" not defined'],
    ] as const) {
      await writeFile(join(ctx, "Bad"), modelfile);
      assert.equal(await firstError(build(store, ctx, "bad", join(ctx, "Bad"))), at, modelfile);
    }
  });
});

test("two FROM files, weights and a clip projector, give a model and a projector layer", async () => {
  await withTmp("projector", async (dir) => {
    const ctx = await context(dir, "FROM ./tiny.gguf\nFROM ./mmproj.gguf\n");
    await writeGguf(join(ctx, "mmproj.gguf"), {
      metadata: new Map([["general.architecture", { type: "string", value: "clip" }]]),
      tensors: [{ name: "v.patch_embd.weight", dims: [32, 4], type: "F32", fill: { kind: "uniform", scale: 0.01 } }],
      seed: 3,
    });
    const r = await build(new LocalStore(join(dir, "models")), ctx);
    assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.projector]);
    assert.equal(r.manifest.layers[1]!.digest, await digestFile(join(ctx, "mmproj.gguf")));
    const config = JSON.parse((await new LocalStore(join(dir, "models")).readBlob(r.manifest.config.digest)).toString());
    assert.equal(config.model_family, "llama");
    assert.deepEqual(config.model_families, ["llama", "clip"]);
  });
});
