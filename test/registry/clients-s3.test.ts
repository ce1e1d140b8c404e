/**
 * Real clients through `mf registry serve --storage s3://…` (two replicas over one bucket prefix, on
 * Ceph in CI): skopeo copies an OCI image in through one replica and out through the other; `mf push`
 * asked for 3 MiB chunks sends the 5 MiB the registry advertises (OCI-Chunk-Min-Length), to one replica,
 * and `mf pull` from both; and `mf push` / `mf pull` through a round-robin balancer, every chunk on the
 * other replica. (Chunks below a part, staged in S3, are covered with raw PATCHes in replicas-s3.)
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { digestFile } from "../../core/digest.js";
import { LocalStore } from "../../core/store.js";
import { buildModel, showOf, SKOPEO_MISSING } from "./client/helpers.js";
import { writeOciLayout } from "./oci-layout.js";
import { startRoundRobin } from "./round-robin.js";
import { runMf } from "./run-mf.js";
import { S3_MISSING } from "./s3-peer.js";
import { replicaSet, type Replica, type ReplicaSet } from "./s3-replicas.js";

function skopeo(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("skopeo", ["--insecure-policy", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, out }));
  });
}

describe("clients through a registry on S3", { skip: S3_MISSING }, () => {
  let set: ReplicaSet;
  let a: Replica;
  let b: Replica;
  before(async () => {
    set = await replicaSet("clients");
    a = await set.start();
    b = await set.start();
  });
  after(async () => set?.close());

  it("skopeo copies an OCI image with a 24 MiB layer in through one replica and out through the other", { skip: SKOPEO_MISSING }, async () => {
    const src = join(set.dir, "oci-src");
    const dst = join(set.dir, "oci-dst");
    const image = await writeOciLayout(src, "latest", 24 * 1024 * 1024 + 5);
    const push = await skopeo(["copy", "--dest-tls-verify=false", `oci:${src}:latest`, `docker://${a.host}/models/tiny:latest`]);
    assert.equal(push.code, 0, push.out);
    const pull = await skopeo(["copy", "--src-tls-verify=false", `docker://${b.host}/models/tiny:latest`, `oci:${dst}:latest`]);
    assert.equal(pull.code, 0, pull.out);
    const index = JSON.parse(await readFile(join(dst, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest, "the OCI manifest travelled unchanged");
    assert.equal(await digestFile(join(dst, "blobs", "sha256", image.layerDigest.slice(7))), image.layerDigest);
  });

  it("mf push (--chunk-size 3M, raised to the advertised 5 MiB) to one replica, mf pull from either: the same model, digests verified", async () => {
    const home = (name: string) => ({ MF_MODELS: join(set.dir, name, "models"), MF_HOME: join(set.dir, name, "home") });
    const src = new LocalStore(home("src").MF_MODELS);
    const name = `${a.host}/team/model:v1`;
    await buildModel(src, set.dir, name, { bigLayerBytes: 12 * 1024 * 1024 });
    const push = await runMf(["push", "--insecure", "--chunk-size", "3M", name], home("src"));
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stderr, /success/);
    const want = await showOf(src, name);
    for (const [label, r] of [["a", a], ["b", b]] as const) {
      const pulled = `${r.host}/team/model:v1`;
      const pull = await runMf(["pull", "--insecure", pulled], home(`dst-${label}`));
      assert.equal(pull.code, 0, pull.stderr);
      assert.match(pull.stderr, /verifying sha256 digest/);
      assert.deepEqual(await showOf(new LocalStore(home(`dst-${label}`).MF_MODELS), pulled), want);
    }
  });

  it("mf push and pull through a round-robin balancer: each 6 MiB chunk lands on the other replica", async () => {
    const lb = await startRoundRobin([a.base, b.base]);
    try {
      const home = (name: string) => ({ MF_MODELS: join(set.dir, name, "models"), MF_HOME: join(set.dir, name, "home") });
      const src = new LocalStore(home("lb-src").MF_MODELS);
      const name = `${lb.host}/team/balanced:v1`;
      await buildModel(src, set.dir, name, { bigLayerBytes: 20 * 1024 * 1024, seed: 7 });
      const push = await runMf(["push", "--insecure", "--chunk-size", "6M", name], home("lb-src"));
      assert.equal(push.code, 0, push.stderr);
      assert.ok(lb.counts[0]! >= 4 && lb.counts[1]! >= 4, `both replicas served the push: ${lb.counts.join(", ")}`);
      const pull = await runMf(["pull", "--insecure", name], home("lb-dst"));
      assert.equal(pull.code, 0, pull.stderr);
      assert.deepEqual(await showOf(new LocalStore(home("lb-dst").MF_MODELS), name), await showOf(src, name));
    } finally {
      await lb.close();
    }
  });
});
