/** Garbage collection: mark from all manifests, sweep old unreferenced blobs, safe against a concurrent push. */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { utimes } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { collectGarbage } from "../../registry/server/gc.js";
import { FsDriver } from "../../registry/server/storage/fs.js";
import type { StorageDriver } from "../../registry/server/storage/driver.js";
import { pushBlob, pushImage, randomRepo, sha256, startUpload } from "./oci-client.js";
import { startInProcess, type InProcessRegistry } from "./peers.js";

const servers: InProcessRegistry[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

function blobFile(root: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(root, "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

async function age(root: string, digest: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await utimes(blobFile(root, digest), t, t);
}

describe("registry gc", () => {
  it("sweeps old unreferenced blobs, keeps referenced and young ones and open uploads", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gc");
    const image = await pushImage(s.base, repo, "keep");
    const manifest = JSON.parse(image.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const orphanOld = await pushBlob(s.base, repo, randomBytes(3000));
    const orphanYoung = await pushBlob(s.base, repo, randomBytes(3000));
    const open = await startUpload(s.base, repo);
    const patch = await fetch(open, { method: "PATCH", body: randomBytes(100), headers: { "content-type": "application/octet-stream" } });
    assert.equal(patch.status, 202);
    for (const d of [orphanOld, manifest.config.digest, manifest.layers[0]!.digest, image.digest]) await age(s.root, d, 2 * 3600_000);

    const dry = await collectGarbage({ storage: new FsDriver({ root: s.root }), graceMs: 3600_000, dryRun: true });
    assert.equal(dry.sweptBlobs, 1);
    assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${orphanOld}`, { method: "HEAD" })).status, 200, "dry run deletes nothing");

    const swept: string[] = [];
    const report = await collectGarbage({ storage: new FsDriver({ root: s.root }), graceMs: 3600_000, onSweep: (d) => swept.push(d) });
    assert.deepEqual(swept, [orphanOld]);
    assert.equal(report.sweptBytes, 3000);
    assert.equal(report.keptYoung, 1);
    assert.equal(report.manifests, 1);
    assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${orphanOld}`, { method: "HEAD" })).status, 404);
    for (const d of [orphanYoung, manifest.config.digest, manifest.layers[0]!.digest]) {
      assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
    }
    const m = await fetch(`${s.base}/v2/${repo}/manifests/keep`);
    assert.equal(sha256(Buffer.from(await m.arrayBuffer())), image.digest);
    assert.equal((await fetch(open)).status, 204, "the open upload survives");
  });

  it("a manifest pushed while GC runs keeps its old blobs (touched after marking began)", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gcrace");
    const config = Buffer.from("{}");
    const layer = randomBytes(5000);
    const cd = await pushBlob(s.base, repo, config);
    const ld = await pushBlob(s.base, repo, layer);
    await age(s.root, cd, 2 * 3600_000);
    await age(s.root, ld, 2 * 3600_000);
    const fs = new FsDriver({ root: s.root });
    let pushed = false;
    // Between mark and sweep (the first listing of blobs/), a client pushes a manifest using both blobs.
    const racing: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, {
      async list(prefix: string) {
        if (prefix === "blobs" && !pushed) {
          pushed = true;
          const body = JSON.stringify({
            schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
            layers: [{ mediaType: "application/vnd.example.model", digest: ld, size: layer.length }],
          });
          const res = await fetch(`${s.base}/v2/${repo}/manifests/late`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
          assert.equal(res.status, 201);
        }
        return fs.list(prefix);
      },
    });
    const report = await collectGarbage({ storage: racing, graceMs: 3600_000 });
    assert.ok(pushed);
    assert.equal(report.sweptBlobs, 0);
    assert.equal(report.keptYoung, 3, "both blobs and the new manifest were touched or written after marking began");
    for (const d of [cd, ld]) assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200);
  });
});
