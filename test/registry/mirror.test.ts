/**
 * `mf registry serve --mirror NS=URL`, the pull-through mirror, with real processes on 127.0.0.1: a second
 * `mf registry serve` as upstream (pulled through by the real `mf pull`), and a small upstream speaking
 * Ollama's registry protocol as compat.md §4 describes it (307 to a signed blob URL, docker v2 manifests
 * only), pulled through by the stock-Ollama-style client of the protocol test: 16 ranged GETs served
 * while the blob is still arriving, one upstream fetch. Then an upstream that goes down, a tag that
 * moves, pushes, the allow-list and an upstream that lies about a blob.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseDigest } from "../../core/digest.js";
import { LocalStore } from "../../core/store.js";
import { blobPath } from "../../registry/server/storage/layout.js";
import { buildModel, showOf } from "./client/helpers.js";
import { sha256 } from "./oci-client.js";
import { ollamaPullBlob, ollamaStartBlobPull } from "./ollama-client.js";
import { OllamaUpstream } from "./ollama-upstream.js";
import { Cleanup, type SpawnedRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";

const made = new Cleanup();
let upstream: SpawnedRegistry;
let ollama: OllamaUpstream;
let mirror: SpawnedRegistry;
let mirrorRoot: string;
let dir: string;

before(async () => {
  dir = await made.tempDir("mf-mirror-");
  ollama = await OllamaUpstream.start();
  upstream = await made.serve(join(dir, "upstream"));
  mirrorRoot = join(dir, "mirror");
  mirror = await made.serve(mirrorRoot, [
    "--mirror", `up=${upstream.base}/team`,
    "--mirror", `ol=${ollama.base}`,
    "--mirror-allow", "ol/library/*",
    "--mirror-ttl", "0s",
  ]);
});
after(async () => {
  await made.cleanup();
  await ollama?.close();
});

const DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json";

async function manifestOf(base: string, repo: string, ref: string): Promise<{ status: number; bytes: Buffer; digest: string | null }> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { headers: { accept: DOCKER_V2 } });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), digest: res.headers.get("docker-content-digest") };
}

function storedBlob(root: string, digest: string): boolean {
  return existsSync(join(root, blobPath(parseDigest(digest)!)));
}

describe("pull-through mirror: a second mf registry as upstream", () => {
  it("mf pull through the mirror fetches from upstream, verified, and stores it; the next pull is served locally", async () => {
    const home = (name: string) => ({ MF_MODELS: join(dir, name, "models"), MF_HOME: join(dir, name, "home") });
    const src = new LocalStore(home("src").MF_MODELS);
    const upstreamName = `${new URL(upstream.base).host}/team/tiny:v1`;
    await buildModel(src, dir, upstreamName);
    const push = await runMf(["push", "--insecure", upstreamName], home("src"));
    assert.equal(push.code, 0, push.stderr);

    const viaMirror = `${new URL(mirror.base).host}/up/tiny:v1`;
    const pull = await runMf(["pull", "--insecure", viaMirror], home("dst"));
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stderr, /verifying sha256 digest/);
    assert.deepEqual(await showOf(new LocalStore(home("dst").MF_MODELS), viaMirror), await showOf(src, upstreamName));

    // every blob of the image is now in the mirror's own storage, linked to the local name
    const m = await manifestOf(mirror.base, "up/tiny", "v1");
    assert.equal(m.status, 200);
    const doc = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) assert.ok(storedBlob(mirrorRoot, d), `${d} stored by the mirror`);

    // served locally from now on: with upstream's blobs gone, the same pull still works
    for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
      assert.equal((await fetch(`${upstream.base}/v2/team/tiny/blobs/${d}`, { method: "DELETE" })).status, 202);
    }
    const again = await runMf(["pull", "--insecure", viaMirror], home("dst2"));
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await showOf(new LocalStore(home("dst2").MF_MODELS), viaMirror), await showOf(src, upstreamName));
  });

  it("refuses pushes into a mirrored namespace with DENIED (403)", async () => {
    const post = await fetch(`${mirror.base}/v2/up/tiny/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 403);
    const body = (await post.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, "DENIED");
    assert.match(body.errors[0]!.message, /pull-through mirror of .*pushes are refused/);
    const put = await fetch(`${mirror.base}/v2/up/tiny/manifests/v2`, { method: "PUT", body: "{}", headers: { "content-type": DOCKER_V2 } });
    assert.equal(put.status, 403);
    assert.equal(((await put.json()) as { errors: { code: string }[] }).errors[0]!.code, "DENIED");
    // outside the mirrored namespaces the registry takes pushes as usual
    const own = await fetch(`${mirror.base}/v2/team/own/blobs/uploads/`, { method: "POST" });
    assert.equal(own.status, 202);
  });
});

describe("pull-through mirror: an upstream speaking Ollama's registry protocol", () => {
  it("stock Ollama's 16 ranged GETs are served while the blob is still arriving; upstream sends it once", async () => {
    const model = randomBytes(3 * 1024 * 1024 + 12345);
    const img = ollama.image("library/held", "latest", model);
    ollama.held.add(img.model);
    const m = await manifestOf(mirror.base, "ol/library/held", "latest");
    assert.equal(m.status, 200);
    assert.deepEqual(m.bytes, img.manifest, "the manifest verbatim: the local digest is upstream's");
    assert.equal(m.digest, img.digest);

    const halfway = ollama.reachedHalf();
    const first = await ollamaStartBlobPull(mirror.base, "ol/library/held", img.model);
    assert.equal(first.size, model.length);
    await halfway;
    // a second client at the same time joins the same fetch
    const second = await ollamaStartBlobPull(mirror.base, "ol/library/held", img.model);
    // upstream has sent half and holds the rest: the ranges inside that half are served now
    const early = first.ranges.map(([, b], i) => [b, i] as const).filter(([b]) => b < Math.floor(model.length / 2) - 1).map(([, i]) => i);
    assert.ok(early.length >= 6, `ranges inside the first half: ${early.length}`);
    for (const i of early) {
      const [a, b] = first.ranges[i]!;
      assert.deepEqual(await first.pieces[i]!, model.subarray(a, b + 1), `range ${i} served while the blob arrives`);
    }
    assert.equal(storedBlob(mirrorRoot, img.model), false, "not a stored blob before the whole of it is verified");
    ollama.release();
    assert.deepEqual(Buffer.concat(await Promise.all(first.pieces)), model);
    assert.deepEqual(Buffer.concat(await Promise.all(second.pieces)), model);
    assert.equal(ollama.fetchCount(img.model), 1, "one upstream fetch for every client and range");

    // the next pull is local: upstream is not asked again
    for (const d of JSON.parse(m.bytes.toString()).layers.map((l: { digest: string }) => l.digest) as string[]) {
      const blob = await ollamaPullBlob(mirror.base, "ol/library/held", d);
      assert.equal(sha256(blob), d);
    }
    assert.equal(ollama.fetchCount(img.model), 1);
    assert.ok(storedBlob(mirrorRoot, img.model));
  });

  it("two repositories sharing a blob: one upstream fetch, and each gets it (the second only after upstream says it may)", async () => {
    const model = randomBytes(1024 * 1024 + 99);
    const a = ollama.image("library/share-a", "latest", model);
    ollama.image("library/share-b", "latest", model);
    ollama.held.add(a.model);
    const halfway = ollama.reachedHalf();
    const first = await ollamaStartBlobPull(mirror.base, "ol/library/share-a", a.model);
    await halfway;
    const second = await ollamaStartBlobPull(mirror.base, "ol/library/share-b", a.model);
    ollama.release();
    assert.deepEqual(Buffer.concat(await Promise.all(first.pieces)), model);
    assert.deepEqual(Buffer.concat(await Promise.all(second.pieces)), model);
    for (const repo of ["ol/library/share-a", "ol/library/share-b"]) assert.equal(sha256(await ollamaPullBlob(mirror.base, repo, a.model)), a.model);
    assert.equal(ollama.fetchCount(a.model), 1);
    // a repository upstream does not serve it to does not get it from the cache either
    ollama.image("library/share-c", "latest", randomBytes(10));
    const c = await fetch(`${mirror.base}/v2/ol/library/share-c/blobs/${a.model}`, { method: "HEAD" });
    assert.equal(c.status, 404);
  });

  it("an upstream that lies about a blob: the client's stream is cut and nothing is stored", async () => {
    const model = randomBytes(2 * 1024 * 1024 + 7);
    const img = ollama.image("library/liar", "latest", model);
    ollama.lying.add(img.model);
    assert.equal((await manifestOf(mirror.base, "ol/library/liar", "latest")).status, 200);
    // upstream holds each lying body halfway, so the clients are reading when the mismatch shows
    ollama.held.add(img.model);
    let halfway = ollama.reachedHalf();
    const direct = await fetch(`${mirror.base}/v2/ol/library/liar/blobs/${img.model}`);
    assert.equal(direct.status, 200);
    await halfway;
    ollama.release();
    await assert.rejects(direct.arrayBuffer(), "the whole-blob GET is cut before its last byte");
    ollama.held.add(img.model);
    halfway = ollama.reachedHalf();
    const pull = await ollamaStartBlobPull(mirror.base, "ol/library/liar", img.model);
    await halfway;
    ollama.release();
    await assert.rejects(Promise.all(pull.pieces), "a stock Ollama pull fails");
    await Promise.allSettled(pull.pieces);
    assert.equal(storedBlob(mirrorRoot, img.model), false, "a mismatch never becomes a stored blob");
    ollama.lying.delete(img.model);
    assert.equal(sha256(await ollamaPullBlob(mirror.base, "ol/library/liar", img.model)), img.model, "an honest upstream later: fetched and served");
    assert.ok(storedBlob(mirrorRoot, img.model));
  });

  it("names outside the allow-list are unknown (404 NAME_UNKNOWN), and upstream is not asked", async () => {
    const img = ollama.image("other/model", "latest", randomBytes(1000));
    const res = await fetch(`${mirror.base}/v2/ol/other/model/manifests/latest`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code, "NAME_UNKNOWN");
    const blob = await fetch(`${mirror.base}/v2/ol/other/model/blobs/${img.model}`, { method: "HEAD" });
    assert.equal(blob.status, 404);
    assert.equal(ollama.fetchCount(img.model), 0);
  });

  it("upstream down: the cached copy is served; upstream back with the tag moved: the re-check picks it up, not before the TTL", async () => {
    const patient = await made.serve(join(dir, "patient"), ["--mirror", `ol=${ollama.base}`, "--mirror-ttl", "1h"]);
    const v1 = ollama.image("library/moving", "latest", randomBytes(5000));
    assert.equal((await manifestOf(mirror.base, "ol/library/moving", "latest")).digest, v1.digest);
    assert.equal((await manifestOf(patient.base, "ol/library/moving", "latest")).digest, v1.digest);
    for (const l of JSON.parse(v1.manifest.toString()).layers as { digest: string }[]) await ollamaPullBlob(mirror.base, "ol/library/moving", l.digest);

    ollama.down = true;
    const cached = await manifestOf(mirror.base, "ol/library/moving", "latest");
    assert.equal(cached.status, 200, "served from the cache while upstream answers 503");
    assert.equal(cached.digest, v1.digest);
    assert.match(mirror.output(), /serving the cached ol\/library\/moving:latest/);
    const layer = (JSON.parse(v1.manifest.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    assert.equal(sha256(await ollamaPullBlob(mirror.base, "ol/library/moving", layer)), layer, "cached blobs too");
    const never = await manifestOf(mirror.base, "ol/library/never-pulled", "latest");
    assert.equal(never.status, 503, "nothing cached and upstream down: 503, not a 404");

    ollama.down = false;
    const v2 = ollama.image("library/moving", "latest", randomBytes(6000));
    const moved = await manifestOf(mirror.base, "ol/library/moving", "latest");
    assert.equal(moved.digest, v2.digest, "--mirror-ttl 0s: every pull re-checks the tag");
    assert.deepEqual(moved.bytes, v2.manifest);
    assert.equal((await manifestOf(patient.base, "ol/library/moving", "latest")).digest, v1.digest, "--mirror-ttl 1h: the tag is trusted for an hour");
    assert.equal((await manifestOf(patient.base, "ol/library/moving", v2.digest)).digest, v2.digest, "a digest is fetched whatever the TTL");
  });
});

describe("pull-through mirror: shutdown during a fetch", () => {
  it("SIGTERM while a blob arrives: the fetch is abandoned, the registry exits, nothing half-written is left", async () => {
    const root = join(dir, "shutdown");
    const m = await made.serve(root, ["--mirror", `ol=${ollama.base}`, "--shutdown-grace", "1s"]);
    const model = randomBytes(1024 * 1024 + 5);
    const img = ollama.image("library/cut", "latest", model);
    ollama.held.add(img.model);
    const halfway = ollama.reachedHalf();
    const res = await fetch(`${m.base}/v2/ol/library/cut/blobs/${img.model}`);
    assert.equal(res.status, 200);
    await halfway;
    m.child.kill("SIGTERM");
    await assert.rejects(res.arrayBuffer(), "the client's stream is cut");
    assert.equal(await m.exited, 0);
    ollama.release();
    assert.equal(storedBlob(root, img.model), false);
    const uploads = join(root, "uploads");
    assert.deepEqual(existsSync(uploads) ? readdirSync(uploads, { recursive: true }) : [], [], "no staging object left");
  });
});

describe("pull-through mirror: settings that cannot work stop the start with a clear message", () => {
  for (const [args, message] of [
    [["--mirror", "registry.ollama.ai"], /--mirror "registry\.ollama\.ai": expected NAMESPACE=URL/],
    [["--mirror", "Ollama=https://registry.ollama.ai"], /the namespace must be one lowercase name segment/],
    [["--mirror", "ollama=ftp://registry.ollama.ai"], /only http:\/\/ and https:\/\/ upstreams/],
    [["--mirror", "ollama=https://user:pw@registry.ollama.ai"], /credentials go in the config file/],
    [["--mirror", "a=http://127.0.0.1:9", "--mirror", "a=http://127.0.0.1:8"], /two mirrors for the namespace "a"/],
    [["--mirror", "a=http://127.0.0.1:9", "--mirror-allow", "b/x"], /--mirror-allow "b\/x": no --mirror for the namespace "b"/],
    [["--mirror-allow", "a/x"], /--mirror-allow needs a --mirror/],
  ] as [string[], RegExp][]) {
    it(args.join(" "), async () => {
      const root = join(dir, `bad-${randomBytes(4).toString("hex")}`);
      const started = await made.serve(root, args).then(() => null, (e: Error) => e);
      assert.ok(started, "the registry started");
      assert.match(started.message, message);
      assert.doesNotMatch(started.message, /pw@/, "a URL with credentials is not echoed");
    });
  }
});
