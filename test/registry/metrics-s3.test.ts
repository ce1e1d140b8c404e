/**
 * Registry metrics on S3 (Ceph in CI): two replicas of `mf registry serve --storage s3://… --metrics`
 * over one bucket prefix. `mf push` through one moves its request and byte counters; the upload sessions
 * open and the gc figures are the storage's, so both replicas report the same values, and
 * `mf registry gc` on the bucket moves them on both.
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalStore } from "../../core/store.js";
import { MF_BIN, mf } from "../helpers/mf.js";
import { settledScrape } from "../helpers/prom.js";
import { buildModel } from "./client/helpers.js";
import { pushBlob, startUpload } from "./oci-client.js";
import { S3_MISSING, S3_PEER } from "./s3-peer.js";
import { QUIET_SDK, replicaSet, type Replica, type ReplicaSet } from "./s3-replicas.js";

const IN_FLIGHT = "mf_registry_http_requests_in_flight";

describe("registry metrics on S3", { skip: S3_MISSING }, () => {
  let set: ReplicaSet;
  let a: Replica;
  let b: Replica;
  let env: Record<string, string>;
  before(async () => {
    set = await replicaSet("metrics");
    a = await set.start(["--metrics"]);
    b = await set.start(["--metrics"]);
    const peer = S3_PEER!;
    env = { ...QUIET_SDK, MF_HOME: join(set.dir, "home"), AWS_ACCESS_KEY_ID: peer.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: peer.credentials.secretAccessKey };
  });
  after(() => set?.close());
  const scrapeOf = (r: Replica) => settledScrape(`${r.base}/metrics`, IN_FLIGHT, 1);

  it("a push moves the replica's own counters; sessions open and gc figures are the same on every replica", async () => {
    const name = `${a.host}/s3-team/s3-model:v1`;
    const models = join(set.dir, "models");
    await buildModel(new LocalStore(models), set.dir, name);
    const m = (await new LocalStore(models).readModel(name)).manifest;
    const bytes = [m.config, ...m.layers].reduce((n, d) => n + d.size, 0);

    const a0 = await scrapeOf(a);
    const push = await mf(["push", name, "--insecure", "-q"], { env: { ...env, MF_MODELS: models }, command: [MF_BIN] });
    assert.equal(push.code, 0, push.stderr);
    const a1 = await scrapeOf(a);
    assert.equal(a1.value("mf_registry_blob_bytes_received_total") - a0.value("mf_registry_blob_bytes_received_total"), bytes);
    assert.equal(a1.value("mf_registry_http_requests_total", { method: "PUT", route: "/v2/{name}/manifests/{reference}", status: "201" }), 1);
    assert.equal((await scrapeOf(b)).value("mf_registry_http_requests_total", { method: "PUT" }), 0, "the other replica served none of it");

    const loc = await startUpload(a.base, "s3-team/pending");
    assert.equal((await scrapeOf(a)).value("mf_registry_upload_sessions_open"), 1);
    assert.equal((await scrapeOf(b)).value("mf_registry_upload_sessions_open"), 1, "a session begun on a is open for b too");
    assert.equal((await fetch(loc.replace(a.base, b.base), { method: "DELETE" })).status, 204);
    assert.equal((await scrapeOf(a)).value("mf_registry_upload_sessions_open"), 0);

    await pushBlob(b.base, "s3-team/orphan", Buffer.from("an orphan blob on S3, for gc to free"));
    const gc = await mf(["registry", "gc", "--storage", set.storage, "--s3-endpoint", S3_PEER!.endpoint, "--s3-region", S3_PEER!.region, "--grace", "0s"], { env, command: [MF_BIN] });
    assert.equal(gc.code, 0, gc.stderr);
    const freed = Number(/blobs removed \((\d+) bytes\)/.exec(gc.stdout)?.[1]);
    assert.ok(freed > 0, gc.stdout);
    for (const r of [a, b]) {
      const s = await scrapeOf(r);
      assert.equal(s.value("mf_registry_gc_runs_total"), 1);
      assert.equal(s.value("mf_registry_gc_freed_bytes_total"), freed);
      assert.ok(!s.text.includes("s3-team") && !s.text.includes("s3-model"), "no repository name in the scrape");
    }
  });
});
