/**
 * The web page's JSON API on one storage driver (filesystem or S3), without access control: repositories
 * listed with tag count, size and last push, searched and paginated on the server; a repository's tags
 * with digest, size and who pushed when; a model's facts from its config and GGUF header; any other
 * artifact's manifest, layers and referrers; bad input answered 4xx in the registry's error shape.
 */
import { strict as assert } from "node:assert";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { buildFromModelfile } from "../../../builder/build.js";
import { parseRef } from "../../../core/reference.js";
import { TINY, writeLlamaGguf } from "../../../fixtures/gguf/index.js";
import type { StorageDriver } from "../../../registry/server/index.js";
import { pushRecordPath } from "../../../registry/server/storage/layout.js";
import { clientWith } from "../auth/helpers.js";
import { pushImage } from "../oci-client.js";
import { tempDir } from "../peers.js";
import { api, newStore, pushModel, startWebRegistry, type WebRegistry } from "./helpers.js";

export function webApiSuite(storage: () => Promise<StorageDriver | undefined>, cleanup: () => Promise<void> = async () => {}): void {
  let reg: WebRegistry;
  let dir: string;
  let now = Date.UTC(2026, 0, 15, 10, 0, 0);
  const pushed: Record<string, string> = {};
  before(async () => {
    dir = await tempDir("mf-web-api-");
    reg = await startWebRegistry({ storage: await storage(), clock: () => now });
    const store = await newStore();
    for (const [i, name] of ["library/alpha:latest", "team/beta:v1", "team/beta:v2", "team/gamma:latest"].entries()) {
      now += 60_000;
      pushed[name] = await pushModel(store, dir, `${reg.host}/${name}`, { seed: i + 1 });
    }
  });
  after(async () => {
    await reg?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await cleanup();
  });

  it("lists repositories with tag count, total size and last push; searches and paginates on the server", async () => {
    const all = await api(reg.base, "/ui/api/repositories");
    assert.equal(all.status, 200);
    assert.equal(all.body.total, 3);
    assert.deepEqual(all.body.items.map((r: { name: string }) => r.name), ["library/alpha", "team/beta", "team/gamma"]);
    const beta = all.body.items[1];
    assert.equal(beta.tags, 2);
    assert.equal(beta.lastPush, Date.UTC(2026, 0, 15, 10, 3, 0), "the later of its two pushes");
    const tags = (await api(reg.base, "/ui/api/repository?name=team/beta")).body.tags;
    // two models from different seeds: two weights blobs; the repository's size counts each blob once
    assert.ok(beta.size > Math.max(...tags.map((t: { size: number }) => t.size)), `${beta.size}`);
    const found = await api(reg.base, "/ui/api/repositories?q=BET");
    assert.deepEqual(found.body.items.map((r: { name: string }) => r.name), ["team/beta"]);
    assert.equal(found.body.total, 1);
    const p2 = await api(reg.base, "/ui/api/repositories?per_page=2&page=2");
    assert.deepEqual({ total: p2.body.total, page: p2.body.page, perPage: p2.body.perPage, names: p2.body.items.map((r: { name: string }) => r.name) },
      { total: 3, page: 2, perPage: 2, names: ["team/gamma"] });
    const past = await api(reg.base, "/ui/api/repositories?per_page=2&page=9");
    assert.deepEqual([past.status, past.body.items], [200, []]);
  });

  it("a repository lists its tags with digest, size, push time; a tag pushed again is recorded again", async () => {
    const r = await api(reg.base, "/ui/api/repository?name=team/beta");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.tags.map((t: { tag: string; digest: string; pushedAt: number; pusher: string | null; isModel: boolean }) => [t.tag, t.digest, t.pushedAt, t.pusher, t.isModel]), [
      ["v1", pushed["team/beta:v1"], Date.UTC(2026, 0, 15, 10, 2, 0), null, true],
      ["v2", pushed["team/beta:v2"], Date.UTC(2026, 0, 15, 10, 3, 0), null, true],
    ]);
    assert.ok(r.body.tags[0].size > 1000);
    // v1 re-pointed at gamma's image by a manifest PUT: a new record, with the new digest
    now = Date.UTC(2026, 0, 16, 9, 0, 0);
    const manifest = await fetch(`${reg.base}/v2/team/gamma/manifests/latest`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    const bytes = Buffer.from(await manifest.arrayBuffer());
    const store = await newStore();
    await pushModel(store, dir, `${reg.host}/team/beta:tmp`, { seed: 4 }); // gamma's image, so its blobs are linked in team/beta
    const put = await fetch(`${reg.base}/v2/team/beta/manifests/v1`, { method: "PUT", body: bytes, headers: { "content-type": manifest.headers.get("content-type")! } });
    assert.equal(put.status, 201);
    const after = await api(reg.base, "/ui/api/repository?name=team/beta");
    const v1 = after.body.tags.find((t: { tag: string }) => t.tag === "v1");
    assert.deepEqual([v1.digest, v1.pushedAt], [pushed["team/gamma:latest"], Date.UTC(2026, 0, 16, 9, 0, 0)]);
    // a tag written before push records existed: its last write is its push time, its pusher unknown
    await reg.storage.delete(pushRecordPath("team/beta", "v2"));
    const v2 = (await api(reg.base, "/ui/api/repository?name=team/beta")).body.tags.find((t: { tag: string }) => t.tag === "v2");
    assert.equal(v2.pusher, null);
    assert.ok(Math.abs(v2.pushedAt - Date.now()) < 3600_000, `${v2.pushedAt}`);
    // a deleted tag is gone from the list (its record with it)
    const del = await fetch(`${reg.base}/v2/team/beta/manifests/tmp`, { method: "DELETE" });
    assert.equal(del.status, 202);
    assert.deepEqual((await api(reg.base, "/ui/api/repository?name=team/beta")).body.tags.map((t: { tag: string }) => t.tag), ["v1", "v2"]);
  });

  it("a model's page: architecture, parameters, quantisation, context, template, system, licence, Modelfile, layers, pull commands", async () => {
    const r = await api(reg.base, "/ui/api/manifest?name=library/alpha&ref=latest");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const b = r.body;
    assert.equal(b.digest, pushed["library/alpha:latest"]);
    assert.equal(b.isModel, true);
    assert.equal(b.model.architecture, "llama");
    assert.ok(b.model.parameterCount > 0);
    assert.match(b.model.parameterSize, /^\d+(\.\d+)?[KMB]$/);
    assert.match(b.model.quantization, /^(F32|F16|Q\w+)$/);
    assert.equal(typeof b.model.contextLength, "number");
    assert.match(b.model.template, /<\|im_start\|>/);
    assert.equal(b.model.system, "You are a test.");
    assert.deepEqual(b.model.parameters, { temperature: 0.5, stop: ["<|im_end|>"] });
    assert.deepEqual(b.model.licenses, ["MIT"]);
    const weights = b.layers.find((l: { mediaType: string }) => l.mediaType === "application/vnd.ollama.image.model");
    assert.ok(weights && weights.size > 0);
    assert.match(b.model.modelfile, new RegExp(`^# FROM ${reg.host}/library/alpha:latest$`, "m"));
    assert.match(b.model.modelfile, new RegExp(`^FROM ${weights.digest}$`, "m"));
    assert.match(b.model.modelfile, /^PARAMETER temperature 0.5$/m);
    assert.match(b.model.modelfile, /^SYSTEM /m);
    assert.deepEqual(b.pull, { mf: `mf pull --insecure ${reg.host}/library/alpha:latest`, ollama: `ollama pull --insecure ${reg.host}/library/alpha:latest` });
    assert.deepEqual(b.layers.map((l: { mediaType: string }) => l.mediaType).sort(), [
      "application/vnd.ollama.image.license", "application/vnd.ollama.image.model", "application/vnd.ollama.image.params",
      "application/vnd.ollama.image.system", "application/vnd.ollama.image.template",
    ]);
    assert.equal(b.totalSize, b.size + b.config.size + b.layers.reduce((n: number, l: { size: number }) => n + l.size, 0));
    // by digest too
    const byDigest = await api(reg.base, `/ui/api/manifest?name=library/alpha&ref=${b.digest}`);
    assert.equal(byDigest.body.model.architecture, "llama");
  });

  it("any other artifact shows its manifest and layers; referrers of a model are listed with their artifactType", async () => {
    const model = pushed["library/alpha:latest"]!;
    const subjectSize = (await api(reg.base, "/ui/api/manifest?name=library/alpha&ref=latest")).body.size;
    const sig = await pushImage(reg.base, "library/alpha", "sig-1", {
      artifactType: "application/vnd.example.signature.v1",
      subject: { mediaType: "application/vnd.docker.distribution.manifest.v2+json", digest: model, size: subjectSize },
    });
    const m = await api(reg.base, "/ui/api/manifest?name=library/alpha&ref=latest");
    assert.deepEqual(m.body.referrers.map((r: { digest: string; artifactType: string }) => [r.digest, r.artifactType]), [[sig.digest, "application/vnd.example.signature.v1"]]);
    const a = await api(reg.base, `/ui/api/manifest?name=library/alpha&ref=${sig.digest}`);
    assert.equal(a.status, 200);
    assert.equal(a.body.isModel, false);
    assert.equal(a.body.model, undefined);
    assert.equal(a.body.artifactType, "application/vnd.example.signature.v1");
    assert.equal(a.body.subject.digest, model);
    assert.deepEqual(a.body.layers.map((l: { mediaType: string; size: number }) => [l.mediaType, l.size]), [["application/vnd.oci.image.layer.v1.tar", 1000]]);
    assert.deepEqual(JSON.parse(a.body.text), JSON.parse(sig.bytes.toString()));
    assert.equal(a.body.pull.ollama, undefined, "ollama cannot pull a signature");
    // a plain image in its own repository
    const img = await pushImage(reg.base, "plain/image", "1.0");
    const p = await api(reg.base, "/ui/api/manifest?name=plain/image&ref=1.0");
    assert.deepEqual([p.body.digest, p.body.isModel, p.body.config.mediaType], [img.digest, false, "application/vnd.oci.image.config.v1+json"]);
  });

  it("a model's messages, and an index with its child manifests", async () => {
    const ctx = join(dir, "msg-ctx");
    await mkdir(ctx, { recursive: true });
    await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
    await writeFile(join(ctx, "Modelfile"), 'FROM ./tiny.gguf\nMESSAGE user "Hello?"\nMESSAGE assistant "Hi, how can I help?"\n');
    const store = await newStore();
    const name = `${reg.host}/library/chatty:latest`;
    await buildFromModelfile(join(ctx, "Modelfile"), { store, tags: [parseRef(name)], contextDir: ctx, homeDir: ctx });
    await clientWith({}).push(store, name, { insecure: true });
    const m = (await api(reg.base, "/ui/api/manifest?name=library/chatty&ref=latest")).body;
    assert.deepEqual(m.model.messages, [{ role: "user", content: "Hello?" }, { role: "assistant", content: "Hi, how can I help?" }]);
    assert.match(m.model.modelfile, /^MESSAGE user Hello\?$/m);
    // an index over a plain image
    const img = await pushImage(reg.base, "multi/arch", "amd64");
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ mediaType: img.mediaType, digest: img.digest, size: img.bytes.length, platform: { os: "linux", architecture: "amd64" } }],
    }));
    const put = await fetch(`${reg.base}/v2/multi/arch/manifests/latest`, { method: "PUT", body: index, headers: { "content-type": "application/vnd.oci.image.index.v1+json" } });
    assert.equal(put.status, 201);
    const child = (await api(reg.base, `/ui/api/manifest?name=multi/arch&ref=${img.digest}`)).body;
    const ix = (await api(reg.base, "/ui/api/manifest?name=multi/arch&ref=latest")).body;
    assert.deepEqual(ix.manifests.map((c: { digest: string; platform: unknown }) => [c.digest, c.platform]), [[img.digest, { os: "linux", architecture: "amd64" }]]);
    assert.equal(ix.totalSize, index.length + child.totalSize, "the index and its child, each blob once");
    const tags = (await api(reg.base, "/ui/api/repository?name=multi/arch")).body.tags;
    assert.deepEqual(tags.map((t: { tag: string; size: number }) => [t.tag, t.size]), [["amd64", child.totalSize], ["latest", index.length + child.totalSize]]);
    const summary = (await api(reg.base, "/ui/api/repositories?q=multi/arch")).body.items[0];
    assert.equal(summary.size, index.length + child.totalSize);
  });

  it("bad input is a 4xx in the registry's error shape; unknown repositories and manifests are 404", async () => {
    const cases: [string, number, string][] = [
      ["/ui/api/repository?name=Bad..Name", 400, "NAME_INVALID"],
      ["/ui/api/repository?name=", 400, "NAME_INVALID"],
      ["/ui/api/repository?name=no/such", 404, "NAME_UNKNOWN"],
      ["/ui/api/manifest?name=library/alpha&ref=nope", 404, "MANIFEST_UNKNOWN"],
      ["/ui/api/manifest?name=library/alpha&ref=sha256:zz", 400, "DIGEST_INVALID"],
      ["/ui/api/manifest?name=library/alpha&ref=" + "x".repeat(200), 400, "TAG_INVALID"],
      ["/ui/api/repositories?per_page=0", 400, "UNSUPPORTED"],
      ["/ui/api/repositories?page=-1", 400, "UNSUPPORTED"],
      ["/ui/api/nothing", 404, "NAME_UNKNOWN"],
    ];
    for (const [path, status, code] of cases) {
      const r = await api(reg.base, path);
      assert.equal(r.status, status, path);
      assert.equal(r.body.errors[0].code, code, path);
    }
    // no access file: nothing to sign in to
    const s = await api(reg.base, "/ui/api/session", { method: "POST", origin: reg.base, json: { key: "mfk_x" } });
    assert.equal(s.status, 400);
    assert.deepEqual((await api(reg.base, "/ui/api/info")).body, { accessControl: false, signedIn: null, registry: reg.host });
  });
}
