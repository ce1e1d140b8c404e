/**
 * Several `mf registry serve` processes over one S3 bucket prefix, as behind a load balancer: an upload
 * started on one replica is finished on another after the first is SIGKILLed mid-request; a pull works
 * through either (307 to a pre-signed S3 URL, or proxied with --no-redirect); a token-request nonce
 * used on one is refused by the other; GC running beside a replica that receives pushes loses nothing.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { signRequest, tokenUrl } from "../../registry/protocol/auth.js";
import { makeKey } from "./auth/helpers.js";
import { pushBlob, sha256, startUpload } from "./oci-client.js";
import { REPO_ROOT } from "./peers.js";
import { ageS3Object, s3Driver, S3_MISSING, S3_PEER } from "./s3-peer.js";
import { DIST_CLI, QUIET_SDK, replicaSet, type ReplicaSet } from "./s3-replicas.js";

const MiB = 1 << 20;

function onHost(url: string, host: string): string {
  const u = new URL(url);
  u.host = host;
  return u.toString();
}

async function patch(location: string, body: Buffer, start: number): Promise<Response> {
  return fetch(location, {
    method: "PATCH",
    body,
    headers: { "content-type": "application/octet-stream", "content-range": `${start}-${start + body.length - 1}` },
  });
}

function blobPathOf(digest: string): string {
  const hex = digest.slice("sha256:".length);
  return `blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

async function pushManifest(base: string, repo: string, tag: string, blobs: { digest: string; size: number }[]): Promise<string> {
  const [config, ...layers] = blobs;
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config!.digest, size: config!.size },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: l.digest, size: l.size })),
  }));
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
  assert.equal(res.status, 201, await res.text());
  return sha256(body);
}

async function blobBytes(base: string, repo: string, digest: string, init: RequestInit = {}): Promise<Buffer> {
  const res = await fetch(`${base}/v2/${repo}/blobs/${digest}`, init);
  assert.ok(res.status === 200 || res.status === 206, `GET blob: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

function mfGc(storage: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [DIST_CLI, "registry", "gc", "--storage", storage, "--s3-endpoint", S3_PEER!.endpoint, "--grace", "1h"], {
      cwd: REPO_ROOT, env: { ...process.env, ...QUIET_SDK }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("close", (code) => resolve({ code, out }));
  });
}

describe("registry replicas on S3", { skip: S3_MISSING }, () => {
  const sets: ReplicaSet[] = [];
  const fresh = async (label: string) => {
    const s = await replicaSet(label);
    sets.push(s);
    return s;
  };
  after(async () => {
    for (const s of sets) await s.close();
  });

  it("a chunked upload started on one replica is finished on another after the first is SIGKILLed mid-PATCH", async () => {
    const set = await fresh("kill");
    const a = await set.start();
    const b = await set.start();
    const repo = "replicas/blob";
    const blob = randomBytes(40 * MiB);
    const digest = sha256(blob);

    const post = await fetch(`${a.base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    assert.equal(post.headers.get("oci-chunk-min-length"), String(5 * MiB), "S3's part minimum is advertised");
    const uuid = post.headers.get("docker-upload-uuid")!;
    let location = new URL(post.headers.get("location")!, a.base).toString();
    // 6 MiB: one S3 part; 3 MiB: staged as an object, since it is no legal part on its own
    for (const [start, end] of [[0, 6 * MiB], [6 * MiB, 9 * MiB]] as const) {
      const r = await patch(location, blob.subarray(start, end), start);
      assert.equal(r.status, 202, await r.text());
      assert.equal(r.headers.get("range"), `0-${end - 1}`);
      location = new URL(r.headers.get("location")!, a.base).toString();
    }

    // The third chunk streams; once S3 holds a part of it (begun with the staged 3 MiB), A dies.
    const driver = s3Driver(set.prefix);
    try {
      const u = new URL(location);
      const req = httpRequest({
        host: u.hostname, port: u.port, path: u.pathname + u.search, method: "PATCH",
        headers: { "content-type": "application/octet-stream", "content-range": `${9 * MiB}-${40 * MiB - 1}`, "content-length": 31 * MiB },
      });
      req.on("error", () => {});
      let sent = 9 * MiB;
      const feeder = setInterval(() => {
        if (sent < 39 * MiB) {
          req.write(blob.subarray(sent, sent + MiB));
          sent += MiB;
        }
      }, 20);
      try {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const st = await driver.stat(`uploads/${uuid}/data`);
          if (st && st.size > 9 * MiB) break;
          assert.ok(Date.now() < deadline, "replica A never committed a part of the third chunk");
          await new Promise((r) => setTimeout(r, 20));
        }
        a.child.kill("SIGKILL");
        assert.equal(await a.exited, "SIGKILL");
      } finally {
        clearInterval(feeder);
        req.destroy();
      }

      // B answers for the session: the offset A persisted last, before the request it died in.
      const onB = onHost(location, b.host);
      const status = await fetch(onB);
      assert.equal(status.status, 204);
      const range = status.headers.get("range")!;
      assert.equal(range, `0-${9 * MiB - 1}`);
      const rest = await patch(onB, blob.subarray(9 * MiB), 9 * MiB);
      assert.equal(rest.status, 202, await rest.text());
      assert.equal(rest.headers.get("range"), `0-${40 * MiB - 1}`);
      const close = new URL(rest.headers.get("location")!, b.base);
      close.host = b.host;
      close.searchParams.set("digest", digest);
      const put = await fetch(close, { method: "PUT" });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get("docker-content-digest"), digest);

      const got = await blobBytes(b.base, repo, digest);
      assert.equal(sha256(got), digest, "the blob assembled across two replicas and a crash is byte-exact");
      assert.equal((await driver.stat(`uploads/${uuid}/data`)), null, "the session is gone");
      assert.deepEqual(await driver.list("uploads"), []);
    } finally {
      driver.close();
    }
  });

  it("a pull works through either replica: 307 to a pre-signed S3 URL (ranges served by S3), or proxied with --no-redirect", async () => {
    const set = await fresh("pull");
    const a = await set.start();
    const b = await set.start(["--no-redirect"]);
    const repo = "replicas/model";
    const config = Buffer.from('{"model_format":"gguf"}');
    const layer = randomBytes(12 * MiB + 123);
    const cd = await pushBlob(a.base, repo, config);
    const ld = await pushBlob(b.base, repo, layer);
    const md = await pushManifest(a.base, repo, "v1", [{ digest: cd, size: config.length }, { digest: ld, size: layer.length }]);

    for (const r of [a, b]) {
      const m = await fetch(`${r.base}/v2/${repo}/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      assert.equal(m.status, 200);
      assert.equal(sha256(Buffer.from(await m.arrayBuffer())), md);
      const tags = (await (await fetch(`${r.base}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ["v1"]);
    }

    const redirect = await fetch(`${a.base}/v2/${repo}/blobs/${ld}`, { redirect: "manual" });
    assert.equal(redirect.status, 307);
    const s3url = redirect.headers.get("location")!;
    assert.equal(new URL(s3url).host, new URL(S3_PEER!.endpoint).host, "the blob comes from S3 itself");
    assert.match(s3url, /X-Amz-Signature=/);
    const ranged = await fetch(s3url, { headers: { range: "bytes=5242000-5243999" } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), layer.subarray(5242000, 5244000));
    assert.equal(sha256(await blobBytes(a.base, repo, ld)), ld);
    assert.equal((await fetch(`${a.base}/v2/${repo}/blobs/${cd}`, { redirect: "manual" })).status, 307, "small blobs too");

    const proxied = await fetch(`${b.base}/v2/${repo}/blobs/${ld}`, { redirect: "manual" });
    assert.equal(proxied.status, 200);
    assert.equal(sha256(Buffer.from(await proxied.arrayBuffer())), ld);
    const part = await blobBytes(b.base, repo, ld, { headers: { range: "bytes=100-199" } });
    assert.deepEqual(part, layer.subarray(100, 200));
    assert.deepEqual(await blobBytes(b.base, repo, cd), config);
  });

  it("a token-request nonce used on one replica is refused by the other; tokens verify on both", async () => {
    const set = await fresh("nonce");
    const alice = makeKey(set.dir, "alice");
    const access = join(set.dir, "access.yaml");
    await writeFile(access, `keys:\n  - key: ${alice.line}\n    access:\n      "team/*": [pull, push]\n`);
    const publicUrl = "http://registry.test:5000";
    const a = await set.start(["--access", access, "--public-url", publicUrl]);
    const b = await set.start(["--access", access, "--public-url", publicUrl]);

    const challenge = await request(`${a.base}/v2/team/model/tags/list`);
    await challenge.body.dump();
    assert.equal(challenge.statusCode, 401);
    assert.match(String(challenge.headers["www-authenticate"]), /realm="http:\/\/registry\.test:5000\/token"/);
    const url = tokenUrl({ realm: `${publicUrl}/token`, service: "mf-registry", scopes: ["repository:team/model:pull,push"] });
    const authorization = signRequest(alice.key, "GET", url);
    const path = new URL(url).pathname + new URL(url).search;

    const first = await request(`${a.base}${path}`, { headers: { authorization } });
    const { token } = (await first.body.json()) as { token: string };
    assert.equal(first.statusCode, 200);
    const replay = await request(`${b.base}${path}`, { headers: { authorization } });
    const text = await replay.body.text();
    assert.equal(replay.statusCode, 401, text);
    assert.match(text, /nonce/);

    const onB = await request(`${b.base}/v2/team/model/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    await onB.body.dump();
    assert.equal(onB.statusCode, 202, "a token from one replica is good on the other");
  });

  it("GC on one side while the other replica receives pushes loses nothing (and sweeps what is old and unreferenced)", async () => {
    const set = await fresh("gc");
    const b = await set.start();
    const repo = "replicas/gc";
    const config = Buffer.from('{"n":0}');
    const layer = randomBytes(6 * MiB);
    const cd = await pushBlob(b.base, repo, config);
    const ld = await pushBlob(b.base, repo, layer);
    await pushManifest(b.base, repo, "old", [{ digest: cd, size: config.length }, { digest: ld, size: layer.length }]);
    const orphans = [await pushBlob(b.base, repo, randomBytes(7 * MiB)), await pushBlob(b.base, repo, randomBytes(1000))];
    for (const d of [cd, ld, ...orphans]) await ageS3Object(set.prefix, blobPathOf(d), 2 * 3600_000);
    const open = await startUpload(b.base, repo);
    assert.equal((await patch(open, randomBytes(6 * MiB), 0)).status, 202);

    const images: { tag: string; blobs: { digest: string; size: number; data: Buffer }[] }[] = [];
    const pushes = (async () => {
      await Promise.all([0, 1, 2, 3].map(async (i) => {
        const blobs = [Buffer.from(`{"n":${i + 1}}`), randomBytes((i + 1) * 3 * MiB), randomBytes(2000)];
        const pushed = [];
        for (const data of blobs) pushed.push({ digest: await pushBlob(b.base, repo, data), size: data.length, data });
        await pushManifest(b.base, repo, `new${i}`, pushed);
        images.push({ tag: `new${i}`, blobs: pushed });
      }));
    })();
    const gcRuns: { code: number | null; out: string }[] = [];
    const gcs = (async () => {
      for (let i = 0; i < 3; i++) gcRuns.push(await mfGc(set.storage));
    })();
    await Promise.all([pushes, gcs]);
    for (const g of gcRuns) assert.equal(g.code, 0, g.out);
    const removed = gcRuns.map((g) => g.out).join("");
    for (const d of orphans) assert.match(removed, new RegExp(`removed ${d}`));

    const a = await set.start();
    for (const img of images) {
      const m = await fetch(`${a.base}/v2/${repo}/manifests/${img.tag}`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      assert.equal(m.status, 200, img.tag);
      await m.arrayBuffer();
      for (const blob of img.blobs) assert.equal(sha256(await blobBytes(a.base, repo, blob.digest)), blob.digest);
    }
    for (const d of [cd, ld]) assert.equal((await fetch(`${a.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, "referenced old blobs stay");
    for (const d of orphans) assert.equal((await fetch(`${a.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 404, "old orphans go");
    const status = await fetch(onHost(open, a.host));
    assert.equal(status.status, 204, "the open upload survives, on any replica");
    assert.equal(status.headers.get("range"), `0-${6 * MiB - 1}`);
  });
});
