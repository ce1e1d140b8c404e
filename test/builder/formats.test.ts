/**
 * builder/formats in process over a real store: an Ollama image written as a CNCF ModelPack artifact and a
 * Docker Model Runner image, checked against each spec's rules (docs/spec/model-formats.md: media types,
 * the filepath annotation, config members, layer order); written back to Ollama's format; foreign images
 * written by hand read into Ollama images, with tar layers extracted; sharded GGUFs and tar entries that
 * climb out of the archive refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile } from "../../builder/build.js";
import { changeFormat, convertToOllama, exportImage, planConversion } from "../../builder/formats/index.js";
import { maxExpansion } from "../../builder/formats/to-ollama.js";
import { digestFile, digestOf } from "../../core/digest.js";
import { parseManifest } from "../../core/manifest.js";
import { MediaType } from "../../core/mediatypes.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { tarOf } from "../helpers/tar.js";
import { snapshot, withTmp } from "../helpers/tmp.js";

const MODELFILE = `FROM ./tiny.gguf
TEMPLATE """{{ .Prompt }}"""
SYSTEM You are a test.
PARAMETER temperature 0.5
LICENSE """MIT License text"""
LICENSE """second licence"""
`;

async function setup(dir: string) {
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
  await writeFile(join(ctx, "Modelfile"), MODELFILE);
  const store = new LocalStore(join(dir, "models"));
  const built = await buildFromModelfile(join(ctx, "Modelfile"), { store, tags: [parseRef("tiny")], contextDir: ctx, homeDir: dir });
  return { store, built, gguf: join(ctx, "tiny.gguf"), ggufDigest: await digestFile(join(ctx, "tiny.gguf")) };
}

const PARAM_SIZE = /^\d+(\.\d)?[QTBMKqtbmk]$/;

test("an Ollama image written as a CNCF ModelPack artifact follows docs/spec.md and docs/config.md", async () => {
  await withTmp("formats-mp", async (dir) => {
    const { store, built, ggufDigest } = await setup(dir);
    const out = await exportImage(store, built.manifest, "modelpack", "tiny");
    const m = JSON.parse(out.bytes.toString()) as Record<string, any>;
    assert.equal(m.schemaVersion, 2);
    assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(m.artifactType, "application/vnd.cncf.model.manifest.v1+json");
    assert.equal(m.config.mediaType, "application/vnd.cncf.model.config.v1+json");
    assert.deepEqual(m.layers.map((l: any) => [l.mediaType, l.annotations["org.cncf.model.filepath"]]), [
      ["application/vnd.cncf.model.weight.v1.raw", "model.gguf"],
      ["application/vnd.cncf.model.doc.v1.raw", "LICENSE"],
      ["application/vnd.cncf.model.doc.v1.raw", "LICENSE.2"],
    ]);
    assert.equal(m.layers[0].digest, ggufDigest, "the weights are the GGUF's own blob");
    assert.equal((await store.readBlob(m.layers[1].digest)).toString(), "MIT License text");
    const cfg = JSON.parse((await store.readBlob(m.config.digest)).toString()) as Record<string, any>;
    assert.equal(digestOf(await store.readBlob(m.config.digest)), m.config.digest);
    // required members: descriptor (object), modelfs {type: "layers", diffIds in layer order}
    assert.equal(typeof cfg.descriptor, "object");
    assert.equal(cfg.descriptor.name, "tiny");
    assert.equal(cfg.descriptor.family, "llama");
    assert.deepEqual(cfg.modelfs, { type: "layers", diffIds: m.layers.map((l: any) => l.digest) });
    assert.equal(cfg.config.format, "gguf");
    assert.match(cfg.config.paramSize, PARAM_SIZE);
    assert.equal(cfg.config.quantization, "F16");
    assert.equal(cfg.config.precision, "fp16");
    assert.deepEqual(cfg.config.capabilities, { inputTypes: ["text"], outputTypes: ["text"] });
    assert.deepEqual(out.dropped.sort(), ["PARAMETER", "SYSTEM", "TEMPLATE"]);
    // reproducible: the same image gives the same manifest
    assert.deepEqual((await exportImage(store, built.manifest, "modelpack", "tiny")).bytes, out.bytes);
  });
});

test("an Ollama image written as a Docker Model Runner image: config v0.1, gguf.v3 then .license layers", async () => {
  await withTmp("formats-dmr", async (dir) => {
    const { store, built, ggufDigest } = await setup(dir);
    const out = await exportImage(store, built.manifest, "docker-model", "tiny");
    const m = JSON.parse(out.bytes.toString()) as Record<string, any>;
    assert.equal(m.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(m.artifactType, undefined);
    assert.equal(m.config.mediaType, "application/vnd.docker.ai.model.config.v0.1+json");
    assert.deepEqual(m.layers.map((l: any) => l.mediaType), ["application/vnd.docker.ai.gguf.v3", "application/vnd.docker.ai.license", "application/vnd.docker.ai.license"]);
    assert.equal(m.layers[0].digest, ggufDigest);
    const cfg = JSON.parse((await store.readBlob(m.config.digest)).toString()) as Record<string, any>;
    assert.equal(cfg.config.format, "gguf");
    assert.equal(cfg.config.architecture, "llama");
    assert.equal(cfg.config.quantization, "F16");
    assert.match(cfg.config.parameters, /^\d+(\.\d+)?[KMB]$/);
    assert.deepEqual(cfg.rootfs, { type: "layers", diff_ids: m.layers.map((l: any) => l.digest) });
  });
});

test("ModelPack → Ollama: same GGUF blob, the licences kept, the source digest in the config", async () => {
  await withTmp("formats-back", async (dir) => {
    const { store, built, ggufDigest } = await setup(dir);
    const mp = await changeFormat(store, await store.readModel("tiny"), "modelpack");
    await store.writeManifest(parseRef("tiny-mp"), mp.bytes);
    const back = await changeFormat(store, await store.readModel("tiny-mp"), "ollama");
    assert.equal(back.manifest.mediaType, MediaType.dockerManifest);
    assert.deepEqual(back.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license, MediaType.license]);
    assert.equal(back.manifest.layers[0]!.digest, ggufDigest);
    assert.deepEqual(back.manifest.layers.slice(1).map((l) => l.digest), built.manifest.layers.filter((l) => l.mediaType === MediaType.license).map((l) => l.digest));
    const cfg = JSON.parse((await store.readBlob(back.manifest.config.digest)).toString());
    assert.deepEqual(cfg.mf_source, { format: "modelpack", digest: mp.digest, name: "tiny-mp:latest" });
    assert.equal(cfg.model_family, "llama");
    assert.equal(cfg.file_type, "F16");
  });
});

/** A foreign image written by hand into the store: blobs, config JSON and manifest JSON literally. */
async function handMade(store: LocalStore, config: object, configType: string, layers: { mediaType: string; data: Buffer; annotations?: Record<string, string> }[], artifactType?: string) {
  const cfg = await store.writeBlob(JSON.stringify(config));
  const descs = [];
  for (const l of layers) {
    const w = await store.writeBlob(l.data);
    descs.push({ mediaType: l.mediaType, digest: w.digest, size: w.size, ...(l.annotations ? { annotations: l.annotations } : {}) });
  }
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", ...(artifactType ? { artifactType } : {}),
    config: { mediaType: configType, digest: cfg.digest, size: cfg.size }, layers: descs,
  }));
  return { bytes, manifest: parseManifest(bytes), digest: digestOf(bytes) };
}

test("a KitOps ModelKit whose model layer is a tar (plain and gzip): the GGUF is extracted, the Kitfile's licence kept", async () => {
  await withTmp("formats-kit", async (dir) => {
    const { store, gguf, ggufDigest } = await setup(dir);
    const data = await readFile(gguf);
    const kitfile = { manifestVersion: "1.0.0", package: { name: "tiny", license: "Apache-2.0" }, model: { name: "tiny", path: "models/tiny.gguf" } };
    for (const [type, body] of [["application/vnd.kitops.modelkit.model.v1.tar", tarOf([{ name: "models/", type: "5" }, { name: "models/tiny.gguf", data }])], ["application/vnd.kitops.modelkit.model.v1.tar+gzip", gzipSync(tarOf([{ name: "models/tiny.gguf", data }]))]] as const) {
      const src = await handMade(store, kitfile, "application/vnd.kitops.modelkit.config.v1+json", [
        { mediaType: type, data: body },
        { mediaType: "application/vnd.kitops.modelkit.dataset.v1.tar", data: tarOf([{ name: "data.csv", data: Buffer.from("a,b\n") }]) },
      ], "application/vnd.kitops.modelkit.manifest.v1+json");
      const plan = planConversion(src.manifest, "kit");
      assert.equal(plan.format, "kitops");
      assert.deepEqual(plan.needed.map((d) => d.mediaType), ["application/vnd.kitops.modelkit.config.v1+json", type], "the dataset is not fetched");
      const r = await convertToOllama(store, src.manifest, { digest: src.digest, name: "kit" });
      assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license]);
      assert.equal(r.manifest.layers[0]!.digest, ggufDigest, `${type}: the extracted GGUF is byte for byte the file`);
      assert.equal((await store.readBlob(r.manifest.layers[1]!.digest)).toString(), "Apache-2.0");
      assert.equal(r.config.mf_source?.digest, src.digest);
      assert.match(r.summary[0]!, /^weights models\/tiny\.gguf in [0-9a-f]{12} → model layer \(llama /);
    }
  });
});

test("tar entries that climb out of the archive, links where the GGUF should be, and sharded GGUFs are refused", async () => {
  await withTmp("formats-refuse", async (dir) => {
    const { store, gguf } = await setup(dir);
    const data = await readFile(gguf);
    const kit = (entries: Parameters<typeof tarOf>[0]) => handMade(store, { manifestVersion: "1.0.0" }, "application/vnd.kitops.modelkit.config.v1+json", [{ mediaType: "application/vnd.kitops.modelkit.model.v1.tar", data: tarOf(entries) }]);
    for (const name of ["../../evil.gguf", "/etc/evil.gguf", "models/../../evil.gguf"]) {
      const src = await kit([{ name, data }]);
      await assert.rejects(convertToOllama(store, src.manifest, { digest: src.digest, name: "kit" }), (e: Error) => {
        assert.match(e.message, /entry ".*evil\.gguf" escapes the archive \(an absolute path or a \.\. component\); refused/);
        return true;
      });
    }
    const link = await kit([{ name: "model.gguf", type: "2", linkname: "/etc/passwd" }]);
    await assert.rejects(convertToOllama(store, link.manifest, { digest: link.digest, name: "kit" }), /model\.gguf is a SymbolicLink, not a file; refused/);
    const twoInTar = await kit([{ name: "a.gguf", data }, { name: "b.gguf", data }]);
    await assert.rejects(convertToOllama(store, twoInTar.manifest, { digest: twoInTar.digest, name: "kit" }), /holds a sharded GGUF \(b\.gguf after a\.gguf in [0-9a-f]{12}\); mf cannot convert or serve sharded GGUFs yet: merge the shards/);
    // Docker Model Runner: one gguf.v3 layer per shard; refused from the manifest alone, before any fetch
    const half = data.subarray(0, data.length >> 1);
    const dmr = await handMade(store, { config: { format: "gguf" } }, "application/vnd.docker.ai.model.config.v0.1+json", [
      { mediaType: "application/vnd.docker.ai.gguf.v3", data: half },
      { mediaType: "application/vnd.docker.ai.gguf.v3", data: data.subarray(data.length >> 1) },
    ]);
    assert.throws(() => planConversion(dmr.manifest, "dmr"), /dmr holds a sharded GGUF \(2 GGUF layers\)/);
    const named = await handMade(store, { descriptor: {}, modelfs: { type: "layers", diffIds: [] } }, "application/vnd.cncf.model.config.v1+json", [
      { mediaType: "application/vnd.cncf.model.weight.v1.raw", data: half, annotations: { "org.cncf.model.filepath": "model-00001-of-00002.gguf" } },
    ], "application/vnd.cncf.model.manifest.v1+json");
    assert.throws(() => planConversion(named.manifest, "mp"), /mp holds a sharded GGUF \(model-00001-of-00002\.gguf\)/);
  });
});

test("a compressed tar layer that expands without end (a compression bomb) is stopped, and leaves nothing behind", async () => {
  await withTmp("formats-bomb", async (dir) => {
    const { store } = await setup(dir);
    const before = await snapshot(join(dir, "models"));
    // 80 MiB of zeros as the GGUF entry: gzip makes it ~80 KiB, which may expand to 64 × that + 64 MiB only
    const bomb = gzipSync(tarOf([{ name: "model.gguf", data: Buffer.alloc(80 << 20) }]));
    const src = await handMade(store, { manifestVersion: "1.0.0" }, "application/vnd.kitops.modelkit.config.v1+json", [{ mediaType: "application/vnd.kitops.modelkit.model.v1.tar+gzip", data: bomb }]);
    await assert.rejects(convertToOllama(store, src.manifest, { digest: src.digest, name: "kit" }), (e: Error) => {
      assert.match(e.message, new RegExp(`^tar layer ${src.manifest.layers[0]!.digest} \\(tar\\+gzip, ${bomb.length} bytes\\) expands past ${maxExpansion(bomb.length)} bytes; refused$`));
      return true;
    });
    const after = (await snapshot(join(dir, "models"))).filter((l) => !before.includes(l));
    assert.deepEqual(after.filter((l) => !/blobs\/sha256-/.test(l)), [], "no temp file is left");
  });
});

test("ModelPack under the draft's vnd.cnai names, with a tar+zstd weight layer and a LICENSE inside a doc tar", async () => {
  await withTmp("formats-cnai", async (dir) => {
    const { store, gguf, ggufDigest } = await setup(dir);
    const data = await readFile(gguf);
    const src = await handMade(store, { descriptor: { name: "old" }, modelfs: { type: "layers", diffIds: [] } }, "application/vnd.cnai.model.config.v1+json", [
      { mediaType: "application/vnd.cnai.model.weight.v1.tar+zstd", data: zstdCompressSync(tarOf([{ name: "old.gguf", data }])), annotations: { "org.cnai.model.filepath": "old.gguf" } },
      { mediaType: "application/vnd.cnai.model.doc.v1.tar", data: tarOf([{ name: "README.md", data: Buffer.from("# old") }, { name: "LICENSE", data: Buffer.from("BSD-3-Clause text") }]) },
    ], "application/vnd.cnai.model.manifest.v1+json");
    const r = await convertToOllama(store, src.manifest, { digest: src.digest, name: "old" });
    assert.equal(r.config.mf_source?.format, "modelpack");
    assert.deepEqual(r.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license]);
    assert.equal(r.manifest.layers[0]!.digest, ggufDigest);
    assert.equal((await store.readBlob(r.manifest.layers[1]!.digest)).toString(), "BSD-3-Clause text");
  });
});

