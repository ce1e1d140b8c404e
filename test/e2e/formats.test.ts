/**
 * Every model format in and out, with real processes: ModelPack, Docker Model Runner and KitOps images
 * written by hand from each spec (JSON literally here, blobs pushed by plain HTTP, no mf code builds them)
 * are pushed to `mf registry serve` and Debian's docker-registry, `mf pull` (the built binary) converts them
 * into Ollama images, and `mf serve` (the real engine, a fixture GGUF) answers a generate request on each.
 * mf's own exports (`mf build --format`, `mf convert`) are checked against each spec's rules as the
 * registry holds them, and pulled back and served. Sharded GGUFs and tar traversal are refused on pull; a
 * ModelPack image in the store is refused by mf serve with a message naming `mf convert`.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalStore } from "../../core/store.js";
import { MediaType } from "../../core/mediatypes.js";
import { DISTRIBUTION_MISSING } from "../registry/client/helpers.js";
import { pushBlob } from "../registry/oci-client.js";
import { spawnMfRegistry, startDistribution, tempDir, type DistributionRegistry, type SpawnedRegistry } from "../registry/peers.js";
import { mf, type MfResult, type MfServe, ROOT, startMfServe } from "../helpers/mf.js";
import { tarOf } from "../helpers/tar.js";
import { cachedFixture, TINY, writeLoraAdapterGguf } from "../../fixtures/gguf/index.js";
import { tinyGguf } from "../runtime/harness.js";

const sha256 = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const JINJA = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n";

let dir: string;
let reg: SpawnedRegistry;
let dist: DistributionRegistry | null = null;
let serve: MfServe;
let gguf: Buffer;
/** the store mf serve reads; pulls land here */
let models: string;

function env(store: string): Record<string, string> {
  return { HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: store };
}

async function run(args: string[], store = models): Promise<MfResult> {
  return mf(args, { env: env(store) });
}

async function ok(args: string[], store = models): Promise<MfResult> {
  const r = await run(args, store);
  assert.equal(r.code, 0, `mf ${args.join(" ")}\n${r.stderr}`);
  return r;
}

/** Pushes blobs and a manifest written out here, by plain HTTP; returns the manifest's digest. */
async function pushByHand(base: string, repo: string, tag: string, blobs: Uint8Array[], manifest: object): Promise<string> {
  for (const b of blobs) await pushBlob(base, repo, b);
  const bytes = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: bytes, headers: { "content-type": OCI_MANIFEST } });
  assert.equal(res.status, 201, await res.text());
  return sha256(bytes);
}

async function generate(model: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://${serve.host}/api/generate`, {
    method: "POST",
    body: JSON.stringify({ model, prompt: "hello", stream: false, options: { num_predict: 3, temperature: 0 } }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function answers(model: string): Promise<void> {
  const r = await generate(model);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.done, true);
  assert.equal(typeof r.body.response, "string");
  assert.ok((r.body.eval_count as number) >= 1, JSON.stringify(r.body));
}

/** The stored image of `name` in the serve store: manifest and config. */
async function stored(name: string) {
  const store = new LocalStore(models);
  const m = await store.readModel(name);
  const config = JSON.parse((await store.readBlob(m.manifest.config.digest)).toString()) as Record<string, any>;
  const text = async (i: number) => (await store.readBlob(m.manifest.layers[i]!.digest)).toString();
  return { m, config, text };
}

before(async () => {
  dir = await tempDir("mf-e2e-formats-");
  models = join(dir, "models");
  gguf = await readFile(await tinyGguf());
  reg = await spawnMfRegistry(join(dir, "registry"));
  if (!DISTRIBUTION_MISSING) dist = await startDistribution();
  serve = await startMfServe(["--no-gpu", "--threads", "1"], env(models));
});

after(async () => {
  await serve?.stop();
  if (reg) {
    reg.child.kill("SIGTERM");
    await reg.exited;
  }
  await dist?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("images written by hand from each spec are pulled as Ollama images and served", () => {
  it("a CNCF ModelPack artifact (raw GGUF, LICENSE doc, Jinja chat template) on mf registry", async () => {
    const license = Buffer.from("Apache License\nVersion 2.0, January 2004\n");
    const template = Buffer.from(JINJA);
    // docs/config.md: descriptor and modelfs are required; diffIds are the raw layers' digests
    const config = Buffer.from(JSON.stringify({
      descriptor: { name: "hand-modelpack", family: "llama", licenses: ["Apache-2.0"] },
      config: { format: "gguf", paramSize: "1m" },
      modelfs: { type: "layers", diffIds: [sha256(gguf), sha256(template), sha256(license)] },
    }));
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.cncf.model.manifest.v1+json",
      config: { mediaType: "application/vnd.cncf.model.config.v1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.cncf.model.weight.v1.raw", digest: sha256(gguf), size: gguf.length, annotations: { "org.cncf.model.filepath": "tiny.gguf" } },
        { mediaType: "application/vnd.cncf.model.weight.config.v1.raw", digest: sha256(template), size: template.length, annotations: { "org.cncf.model.filepath": "chat_template.jinja" } },
        { mediaType: "application/vnd.cncf.model.doc.v1.raw", digest: sha256(license), size: license.length, annotations: { "org.cncf.model.filepath": "LICENSE" } },
      ],
    };
    const digest = await pushByHand(reg.base, "hand/modelpack", "v1", [config, gguf, template, license], manifest);
    const name = `${new URL(reg.base).host}/hand/modelpack:v1`;
    const r = await ok(["pull", "--insecure", name]);
    assert.match(r.stderr, new RegExp(`converted the CNCF ModelPack image ${digest} to an Ollama image:\\n  weights tiny\\.gguf → model layer \\(llama `));
    assert.match(r.stderr, /1 licence → license layer/);
    assert.match(r.stderr, /Jinja chat template → kept as a layer/);
    const s = await stored(name);
    assert.equal(s.m.manifest.mediaType, MediaType.dockerManifest, "an Ollama (docker v2) manifest");
    assert.deepEqual(s.m.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license, "application/vnd.docker.ai.chat.template.jinja"]);
    assert.equal(s.m.manifest.layers[0]!.digest, sha256(gguf));
    assert.equal(await s.text(1), license.toString());
    assert.equal(await s.text(2), JINJA);
    assert.deepEqual(s.config.mf_source, { format: "modelpack", digest, name });
    await answers(name);

    // mf serve's own /api/pull converts the same way, and says so in its progress lines
    await pushByHand(reg.base, "hand/modelpack-api", "v1", [config, gguf, template, license], manifest);
    const apiName = `${new URL(reg.base).host}/hand/modelpack-api:v1`;
    const res = await fetch(`http://${serve.host}/api/pull`, { method: "POST", body: JSON.stringify({ model: apiName, insecure: true }) });
    assert.equal(res.status, 200);
    const statuses = (await res.text()).trim().split("\n").map((l) => (JSON.parse(l) as { status: string }).status);
    assert.ok(statuses.includes(`converting CNCF ModelPack image ${digest.slice(7, 19)} to an Ollama image`), statuses.join("\n"));
    assert.equal(statuses.at(-1), "success");
    const viaApi = await stored(apiName);
    assert.deepEqual(viaApi.m.manifest.layers, s.m.manifest.layers, "the same layers as mf pull made");
    assert.deepEqual(viaApi.config.mf_source, { format: "modelpack", digest, name: apiName });
    await answers(apiName);
  });

  it("a Docker Model Runner image (gguf.v3, .license, .chat.template.jinja) on Debian's docker-registry", { skip: DISTRIBUTION_MISSING }, async () => {
    const license = Buffer.from("MIT License\n");
    const template = Buffer.from(JINJA);
    const config = Buffer.from(JSON.stringify({
      config: { format: "gguf", quantization: "F16", parameters: "1.23 M", architecture: "llama", size: "2 MiB" },
      descriptor: { created: "2026-01-01T00:00:00Z" },
      rootfs: { type: "layers", diff_ids: [sha256(gguf), sha256(license), sha256(template)] },
    }));
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.docker.ai.model.config.v0.1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.docker.ai.gguf.v3", digest: sha256(gguf), size: gguf.length },
        { mediaType: "application/vnd.docker.ai.license", digest: sha256(license), size: license.length },
        { mediaType: "application/vnd.docker.ai.chat.template.jinja", digest: sha256(template), size: template.length },
      ],
    };
    const digest = await pushByHand(dist!.base, "hand/dmr", "q", [config, gguf, license, template], manifest);
    const name = `${new URL(dist!.base).host}/hand/dmr:q`;
    const r = await ok(["pull", "--insecure", name]);
    assert.match(r.stderr, new RegExp(`converted the Docker Model Runner image ${digest} to an Ollama image:`));
    const s = await stored(name);
    assert.deepEqual(s.m.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license, "application/vnd.docker.ai.chat.template.jinja"]);
    assert.equal(s.m.manifest.layers[0]!.digest, sha256(gguf), "a raw GGUF layer keeps its blob");
    assert.equal(await s.text(1), "MIT License\n");
    assert.equal(s.config.mf_source.digest, digest);
    await answers(name);
  });

  it("a KitOps ModelKit whose model layer is a tar: extracted, the Kitfile's licence kept, the dataset never fetched", async () => {
    const modelTar = tarOf([{ name: "model/", type: "5" }, { name: "model/tiny.gguf", data: gguf }]);
    const dataset = Buffer.from("not pushed: a pull that fetched it would fail");
    const config = Buffer.from(JSON.stringify({
      manifestVersion: "1.0.0",
      package: { name: "tiny", authors: ["mf tests"], license: "MIT" },
      model: { name: "tiny", path: "model/tiny.gguf" },
      datasets: [{ name: "train", path: "data.csv" }],
    }));
    const manifest = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      artifactType: "application/vnd.kitops.modelkit.manifest.v1+json",
      config: { mediaType: "application/vnd.kitops.modelkit.config.v1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.kitops.modelkit.model.v1.tar", digest: sha256(modelTar), size: modelTar.length },
        { mediaType: "application/vnd.kitops.modelkit.dataset.v1.tar", digest: sha256(dataset), size: dataset.length },
      ],
    };
    // the dataset blob must be in the registry (it checks every blob of a manifest); that the pull never
    // fetched it shows in the store, which does not hold it afterwards
    const digest = await pushByHand(reg.base, "hand/kit", "v1", [config, modelTar, dataset], manifest);
    const name = `${new URL(reg.base).host}/hand/kit:v1`;
    const r = await ok(["pull", "--insecure", name]);
    assert.match(r.stderr, new RegExp(`converted the KitOps ModelKit image ${digest} to an Ollama image:\\n  weights model/tiny\\.gguf in [0-9a-f]{12} → model layer`));
    const s = await stored(name);
    assert.deepEqual(s.m.manifest.layers.map((l) => l.mediaType), [MediaType.model, MediaType.license]);
    assert.equal(s.m.manifest.layers[0]!.digest, sha256(gguf), "the extracted GGUF is the file, byte for byte");
    assert.equal(await s.text(1), "MIT");
    const store = new LocalStore(models);
    assert.equal(await store.hasBlob(sha256(dataset)), false, "the dataset was not fetched");
    assert.equal(await store.hasBlob(sha256(modelTar)), false, "the tar layer is not kept once extracted");
    await answers(name);
  });
});

describe("a kept Jinja chat template is what mf serve renders a chat with", () => {
  it("a Docker Model Runner image whose GGUF has no chat template: the .chat.template.jinja layer shapes the prompt", async () => {
    const bare = await readFile(await cachedFixture({ ...TINY, name: "mf-tiny-no-template", chatTemplate: null }, join(ROOT, ".mf-test-cache")));
    const preamble = "This conversation is rendered by the Jinja template that came with a Docker Model Runner image. ";
    const template = Buffer.from(`{{ '${preamble}' }}${JINJA.replace("{% endfor %}<|im_start|>assistant\n", "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")}`);
    const config = Buffer.from(JSON.stringify({ config: { format: "gguf" }, descriptor: {}, rootfs: { type: "layers", diff_ids: [] } }));
    const image = (withTemplate: boolean) => ({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.docker.ai.model.config.v0.1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.docker.ai.gguf.v3", digest: sha256(bare), size: bare.length },
        ...(withTemplate ? [{ mediaType: "application/vnd.docker.ai.chat.template.jinja", digest: sha256(template), size: template.length }] : []),
      ],
    });
    const host = new URL(reg.base).host;
    await pushByHand(reg.base, "hand/jinja", "with", [config, bare, template], image(true));
    await pushByHand(reg.base, "hand/jinja", "without", [config, bare], image(false));
    const promptTokens = async (tag: string) => {
      await ok(["pull", "--insecure", `${host}/hand/jinja:${tag}`]);
      const res = await fetch(`http://${serve.host}/api/chat`, {
        method: "POST",
        body: JSON.stringify({ model: `${host}/hand/jinja:${tag}`, messages: [{ role: "user", content: "hi" }], stream: false, options: { num_predict: 1 } }),
      });
      const body = (await res.json()) as { prompt_eval_count: number };
      assert.equal(res.status, 200, JSON.stringify(body));
      return body.prompt_eval_count;
    };
    const without = await promptTokens("without");
    const withJinja = await promptTokens("with");
    // the preamble and the ChatML markers are in the prompt only when the kept template renders it
    assert.ok(withJinja > without + preamble.length / 4, `with the template ${withJinja} prompt tokens, without ${without}`);
  });
});

describe("what mf pull refuses", () => {
  it("a sharded GGUF (two gguf.v3 layers named -0000N-of-00002) is refused before anything is fetched, and nothing is stored", async () => {
    const a = gguf.subarray(0, 4096);
    const b = gguf.subarray(4096);
    const config = Buffer.from(JSON.stringify({ config: { format: "gguf" } }));
    await pushByHand(reg.base, "hand/sharded", "v1", [config, a, b], {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.docker.ai.model.config.v0.1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.docker.ai.gguf.v3", digest: sha256(a), size: a.length, annotations: { "org.cncf.model.filepath": "model-00001-of-00002.gguf" } },
        { mediaType: "application/vnd.docker.ai.gguf.v3", digest: sha256(b), size: b.length, annotations: { "org.cncf.model.filepath": "model-00002-of-00002.gguf" } },
      ],
    });
    const name = `${new URL(reg.base).host}/hand/sharded:v1`;
    const r = await run(["pull", "--insecure", name]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mf: .*hand\/sharded:v1 holds a sharded GGUF \(model-00001-of-00002\.gguf\); mf cannot convert or serve sharded GGUFs yet: merge the shards into one file/m);
    const store = new LocalStore(models);
    assert.equal(await store.findModel(name), undefined);
    assert.equal(await store.hasBlob(sha256(a)), false);
  });

  it("a tar layer with an entry that climbs out of the archive is refused, and nothing is stored", async () => {
    const evil = tarOf([{ name: "../../../tmp/evil.gguf", data: gguf }]);
    const config = Buffer.from(JSON.stringify({ manifestVersion: "1.0.0", model: { path: "evil.gguf" } }));
    await pushByHand(reg.base, "hand/evil", "v1", [config, evil], {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.kitops.modelkit.config.v1+json", digest: sha256(config), size: config.length },
      layers: [{ mediaType: "application/vnd.kitops.modelkit.model.v1.tar", digest: sha256(evil), size: evil.length }],
    });
    const name = `${new URL(reg.base).host}/hand/evil:v1`;
    const r = await run(["pull", "--insecure", name]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mf: tar layer sha256:[0-9a-f]{64}: entry "\.\.\/\.\.\/\.\.\/tmp\/evil\.gguf" escapes the archive \(an absolute path or a \.\. component\); refused/m);
    assert.equal(await new LocalStore(models).findModel(name), undefined);
  });
});

describe("mf's own exports, as the registry holds them, follow each spec; pulled back, they serve", () => {
  let ctx: string;
  let builder: string;

  before(async () => {
    ctx = join(dir, "ctx");
    builder = join(dir, "builder-store");
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, "tiny.gguf"), gguf);
    await writeFile(join(ctx, "Modelfile"), 'FROM ./tiny.gguf\nSYSTEM """You are exported."""\nLICENSE """Exported licence"""\n');
  });

  async function registryManifest(base: string, repo: string, tag: string): Promise<{ bytes: Buffer; json: Record<string, any> }> {
    const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    return { bytes, json: JSON.parse(bytes.toString()) as Record<string, any> };
  }

  async function registryBlob(base: string, repo: string, digest: string): Promise<Record<string, any>> {
    const res = await fetch(`${base}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 200);
    return (await res.json()) as Record<string, any>;
  }

  it("mf build --format modelpack → mf push (unchanged) → the ModelPack rules hold → mf pull converts back → serves", async () => {
    const host = new URL(reg.base).host;
    const name = `${host}/out/tiny-mp:v1`;
    const built = await ok(["build", "--format", "modelpack", "-t", name, ctx], builder);
    const digest = built.stdout.trim();
    assert.match(built.stderr, /left out \(no place for them in a CNCF ModelPack image\): SYSTEM/);
    await ok(["push", "--insecure", name], builder);
    const { bytes, json } = await registryManifest(reg.base, "out/tiny-mp", "v1");
    assert.equal(sha256(bytes), digest, "pushed byte for byte");
    assert.equal(json.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(json.artifactType, "application/vnd.cncf.model.manifest.v1+json");
    assert.equal(json.config.mediaType, "application/vnd.cncf.model.config.v1+json");
    assert.deepEqual(json.layers.map((l: any) => [l.mediaType, l.annotations["org.cncf.model.filepath"]]), [
      ["application/vnd.cncf.model.weight.v1.raw", "model.gguf"],
      ["application/vnd.cncf.model.doc.v1.raw", "LICENSE"],
    ]);
    const cfg = await registryBlob(reg.base, "out/tiny-mp", json.config.digest);
    assert.equal(typeof cfg.descriptor, "object");
    assert.deepEqual(cfg.modelfs, { type: "layers", diffIds: json.layers.map((l: any) => l.digest) });
    assert.match(cfg.config.paramSize, /^\d+(\.\d)?[QTBMKqtbmk]$/);
    // mf serve does not read a ModelPack image
    const local = await ok(["pull", "--insecure", name]);
    assert.match(local.stderr, /converted the CNCF ModelPack image/);
    const s = await stored(name);
    assert.equal(s.config.mf_source.digest, digest);
    assert.equal(await s.text(1), "Exported licence");
    await answers(name);
  });

  it("mf build --format docker-model → push to docker-registry → the Docker Model Runner rules hold → pulled back, it serves", { skip: DISTRIBUTION_MISSING }, async () => {
    const host = new URL(dist!.base).host;
    const name = `${host}/out/tiny-dmr:v1`;
    const digest = (await ok(["build", "-q", "--format", "docker-model", "-t", name, ctx], builder)).stdout.trim();
    await ok(["push", "--insecure", name], builder);
    const { bytes, json } = await registryManifest(dist!.base, "out/tiny-dmr", "v1");
    assert.equal(sha256(bytes), digest);
    assert.equal(json.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(json.config.mediaType, "application/vnd.docker.ai.model.config.v0.1+json");
    assert.deepEqual(json.layers.map((l: any) => l.mediaType), ["application/vnd.docker.ai.gguf.v3", "application/vnd.docker.ai.license"]);
    assert.equal(json.layers[0].digest, sha256(gguf));
    const cfg = await registryBlob(dist!.base, "out/tiny-dmr", json.config.digest);
    assert.equal(cfg.config.format, "gguf");
    assert.equal(cfg.config.architecture, "llama");
    assert.deepEqual(cfg.rootfs.diff_ids, json.layers.map((l: any) => l.digest));
    await ok(["pull", "--insecure", name]);
    await answers(name);
  });

  it("mf build --format modelpack of a model with an ADAPTER is refused, saying the Ollama image was stored", async () => {
    const actx = join(dir, "ctx-adapter");
    await mkdir(actx, { recursive: true });
    await writeFile(join(actx, "tiny.gguf"), gguf);
    await writeLoraAdapterGguf(join(actx, "lora.gguf"), { base: TINY, rank: 4, seed: 2 });
    await writeFile(join(actx, "Modelfile"), "FROM ./tiny.gguf\nADAPTER ./lora.gguf\n");
    const r = await run(["build", "-q", "--format", "modelpack", "-t", "local/adapted", actx], builder);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mf: local\/adapted:latest has an ADAPTER \(LoRA\), which a CNCF ModelPack image cannot carry: build the model without it \(the Ollama image sha256:[0-9a-f]{64} was built and stored under local\/adapted:latest\)$/m);
  });

  it("mf serve refuses a ModelPack image in its store, naming mf convert; mf convert --format ollama makes it serve", async () => {
    await ok(["build", "-q", "-t", "local/tiny", ctx]);
    const mp = await ok(["convert", "local/tiny", "--format", "modelpack", "-t", "local/tiny-mp"]);
    assert.match(mp.stderr, /local\/tiny-mp:latest: Ollama image sha256:[0-9a-f]{64} → modelpack image sha256:[0-9a-f]{64}/);
    const refused = await generate("local/tiny-mp");
    assert.equal(refused.status, 400);
    assert.match(String(refused.body.error), /"local\/tiny-mp" is a CNCF ModelPack image; mf serve runs Ollama images: run `mf convert local\/tiny-mp --format ollama`/);
    const shown = await ok(["show", "local/tiny-mp"]);
    assert.match(shown.stdout, /^  Format\n    CNCF ModelPack image \(mf serve runs Ollama images: mf convert local\/tiny-mp:latest --format ollama\)\n\n  Layers\n    application\/vnd\.cncf\.model\.weight\.v1\.raw /);
    const back = await ok(["convert", "local/tiny-mp", "--format", "ollama", "-t", "local/tiny-back"]);
    assert.match(back.stderr, /read the CNCF ModelPack image:/);
    const mpDigest = /→ modelpack image (sha256:[0-9a-f]{64})/.exec(mp.stderr)![1]!;
    assert.match((await ok(["show", "local/tiny-back"])).stdout, new RegExp(`  Converted from\\n    format {14}CNCF ModelPack\\n    digest {14}${mpDigest}\\n    name {16}local/tiny-mp:latest\\n`));
    const s = await stored("local/tiny-back");
    assert.equal(s.config.mf_source.format, "modelpack");
    await answers("local/tiny-back");
  });
});
