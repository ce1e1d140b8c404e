import { strict as assert } from "node:assert";
import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FsDriver } from "../../registry/server/storage/fs.js";
import { storageDriverSuite } from "./storage-suite.js";

storageDriverSuite("fs", async () => {
  const root = await mkdtemp(join(tmpdir(), "mf-storage-"));
  return { driver: new FsDriver({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe("storage driver: fs temporary files", () => {
  const roots: string[] = [];
  after(async () => {
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });
  const fresh = async () => {
    const root = await mkdtemp(join(tmpdir(), "mf-storage-tmp-"));
    roots.push(root);
    return { root, d: new FsDriver({ root }) };
  };

  it("small objects are written under .mf/tmp and renamed into place: nothing is ever made beside them", async () => {
    const { root, d } = await fresh();
    await d.putContent("repositories/a/_manifests/tags/v1", Buffer.from("x"));
    assert.equal(await d.putContentIfAbsent("repositories/a/_manifests/tags/v2", Buffer.from("y")), true);
    assert.equal(await d.putContentIfAbsent("repositories/a/_manifests/tags/v2", Buffer.from("z")), false);
    assert.deepEqual(await readdir(join(root, "repositories/a/_manifests/tags")), ["v1", "v2"]);
    assert.deepEqual(await readdir(join(root, ".mf", "tmp")), [], "no temporary file is left");
    for (const p of [".mf/tmp/x", ".mf"]) await assert.rejects(d.putContent(p, Buffer.from("x")), /invalid path/);
  });

  it("sweepTemporary removes the temporary files a crash left, older than the cutoff, and keeps newer ones", async () => {
    const { root, d } = await fresh();
    await d.putContent("x", Buffer.from("1"));
    const tmp = join(root, ".mf", "tmp");
    await writeFile(join(tmp, "crashed"), "half of a manifest");
    await writeFile(join(tmp, "in-flight"), "being written");
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(tmp, "crashed"), old, old);
    assert.equal(await d.sweepTemporary(Date.now() - 3600_000), 1);
    assert.deepEqual(await readdir(tmp), ["in-flight"]);
  });
});
