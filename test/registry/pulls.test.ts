/**
 * Pull records (pulls.ts): a manifest GET is recorded at most once per interval, counted on a wrapped
 * driver under a real in-process registry with a controlled clock, and a restarted server reads the
 * record before it writes again. The recorder on its own, too: concurrent pulls write once.
 */
import { strict as assert } from "node:assert";
import { rm } from "node:fs/promises";
import { after, describe, it } from "node:test";
import { PullRecorder, readPullTime } from "../../registry/server/pulls.js";
import { FsDriver } from "../../registry/server/storage/fs.js";
import type { StorageDriver } from "../../registry/server/storage/driver.js";
import { checkDigest } from "../../registry/server/validate.js";
import { pushImage, randomRepo } from "./oci-client.js";
import { startInProcess, tempDir } from "./peers.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The driver, counting the reads and writes of pull records. */
function counting(fs: FsDriver): { driver: StorageDriver; writes: string[]; reads: string[] } {
  const writes: string[] = [];
  const reads: string[] = [];
  const driver = Object.assign(Object.create(fs) as StorageDriver, {
    async putContent(path: string, data: Uint8Array) {
      if (path.includes("/_manifests/pulled/")) writes.push(path);
      return fs.putContent(path, data);
    },
    async getContent(path: string, max?: number) {
      if (path.includes("/_manifests/pulled/")) reads.push(path);
      return fs.getContent(path, max);
    },
  });
  return { driver, writes, reads };
}

const ACCEPT = { accept: "application/vnd.oci.image.manifest.v1+json" };

describe("pull records", () => {
  it("a busy manifest costs one write per interval, not one per pull; HEAD and other repositories' pulls are apart", async () => {
    const root = await tempDir("mf-pulls-");
    dirs.push(root);
    let now = Date.UTC(2026, 0, 1);
    const fs = new FsDriver({ root });
    const { driver, writes, reads } = counting(fs);
    const s = await startInProcess({ storage: driver, clock: () => now, pullRecordIntervalMs: 3600_000 }, root);
    try {
      const repo = randomRepo("pulls");
      const image = await pushImage(s.base, repo, "v1");
      assert.deepEqual(writes, [], "a push records no pull");
      for (let i = 0; i < 40; i++) {
        const ref = i % 2 ? "v1" : image.digest;
        const res = await fetch(`${s.base}/v2/${repo}/manifests/${ref}`, { headers: ACCEPT });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      const head = await fetch(`${s.base}/v2/${repo}/manifests/v1`, { method: "HEAD", headers: ACCEPT });
      assert.equal(head.status, 200);
      await s.app.close(); // drains the recorder
      assert.equal(writes.length, 1, `40 pulls, ${writes.length} writes`);
      assert.equal(reads.length, 1, "the first pull reads the record once");
      assert.equal(await readPullTime(fs, repo, checkDigest(image.digest)), now);

      // a restarted server within the interval reads the record and does not write
      const again = await startInProcess({ storage: driver, clock: () => now, pullRecordIntervalMs: 3600_000 }, root);
      now += 30 * 60_000;
      for (let i = 0; i < 5; i++) await (await fetch(`${again.base}/v2/${repo}/manifests/v1`, { headers: ACCEPT })).arrayBuffer();
      await again.app.close();
      assert.equal(writes.length, 1, "still one write");
      assert.equal(reads.length, 2);

      // past the interval: one more write, with the new time
      const later = await startInProcess({ storage: driver, clock: () => now, pullRecordIntervalMs: 3600_000 }, root);
      now += 31 * 60_000;
      for (let i = 0; i < 5; i++) await (await fetch(`${later.base}/v2/${repo}/manifests/v1`, { headers: ACCEPT })).arrayBuffer();
      now += 10 * 60_000;
      for (let i = 0; i < 5; i++) await (await fetch(`${later.base}/v2/${repo}/manifests/v1`, { headers: ACCEPT })).arrayBuffer();
      await later.app.close();
      assert.equal(writes.length, 2, `${writes.length} writes`);
      assert.equal(await readPullTime(fs, repo, checkDigest(image.digest)), now - 10 * 60_000);

      // --pull-record-interval 0: nothing recorded
      const off = await startInProcess({ storage: driver, clock: () => now + 86_400_000, pullRecordIntervalMs: 0 }, root);
      for (let i = 0; i < 3; i++) await (await fetch(`${off.base}/v2/${repo}/manifests/v1`, { headers: ACCEPT })).arrayBuffer();
      await off.app.close();
      assert.equal(writes.length, 2);
    } finally {
      await s.app.close();
    }
  });

  it("concurrent pulls of one manifest write once; a failed write is retried by the next pull", async () => {
    const root = await tempDir("mf-pulls-");
    dirs.push(root);
    const fs = new FsDriver({ root });
    let fail = true;
    const writes: string[] = [];
    const driver = Object.assign(Object.create(fs) as StorageDriver, {
      async putContent(path: string, data: Uint8Array) {
        writes.push(path);
        if (fail) throw new Error("disk full");
        return fs.putContent(path, data);
      },
    });
    const errors: unknown[] = [];
    const recorder = new PullRecorder(driver, 3600_000, () => 1000, (e) => errors.push(e));
    const d = checkDigest(`sha256:${"a".repeat(64)}`);
    for (let i = 0; i < 20; i++) recorder.pulled("team/model", d);
    await recorder.drain();
    assert.equal(writes.length, 1);
    assert.equal(errors.length, 1);
    fail = false;
    recorder.pulled("team/model", d);
    await recorder.drain();
    assert.equal(writes.length, 2, "the failed record is written on the next pull");
    assert.equal(await readPullTime(fs, "team/model", d), 1000);
  });
});
