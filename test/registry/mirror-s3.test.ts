/**
 * The pull-through mirror on S3 (`--storage s3://…`, Ceph): the blob arriving from upstream is spooled to
 * a local file that serves stock Ollama's 16 ranged GETs while it arrives, and committed to the bucket
 * (multipart parts, then the move that makes it visible); one upstream fetch; the next pull is served from
 * S3 (the redirect then points at the pre-signed S3 URL). Runs only when an S3 engine is configured.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { sha256 } from "./oci-client.js";
import { ollamaPullBlob, ollamaStartBlobPull } from "./ollama-client.js";
import { OllamaUpstream } from "./ollama-upstream.js";
import { Cleanup } from "./peers.js";
import { removeS3Prefix, s3Prefix, S3_MISSING, S3_PEER } from "./s3-peer.js";

const made = new Cleanup();
let ollama: OllamaUpstream | undefined;
const prefixes: string[] = [];
after(async () => {
  await made.cleanup();
  await ollama?.close();
  for (const p of prefixes) await removeS3Prefix(p);
});

describe("pull-through mirror on S3", { skip: S3_MISSING }, () => {
  it("ranges served while the blob arrives, one upstream fetch, committed to the bucket and served from it afterwards", async () => {
    ollama = await OllamaUpstream.start();
    const dir = await made.tempDir("mf-mirror-s3-");
    const secretFile = join(dir, "secret");
    await writeFile(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    const prefix = s3Prefix("mirror");
    prefixes.push(prefix);
    const mirror = await made.serve(join(dir, "unused-root"), [
      "--storage", `s3://${S3_PEER!.bucket}/${prefix}`, "--s3-endpoint", S3_PEER!.endpoint, "--s3-region", S3_PEER!.region,
      "--secret-file", secretFile, "--mirror", `ol=${ollama.base}`,
    ], { env: { AWS_ACCESS_KEY_ID: S3_PEER!.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_PEER!.credentials.secretAccessKey } });

    const model = randomBytes(21 * 1024 * 1024 + 4321); // more than one 16 MiB part
    const img = ollama.image("library/big", "latest", model);
    ollama.held.add(img.model);
    const m = await fetch(`${mirror.base}/v2/ol/library/big/manifests/latest`);
    assert.equal(m.status, 200);
    assert.deepEqual(Buffer.from(await m.arrayBuffer()), img.manifest);

    const halfway = ollama.reachedHalf();
    const pull = await ollamaStartBlobPull(mirror.base, "ol/library/big", img.model);
    await halfway;
    const early = pull.ranges.map(([, b], i) => [b, i] as const).filter(([b]) => b < Math.floor(model.length / 2) - 1).map(([, i]) => i);
    assert.ok(early.length >= 6);
    for (const i of early) {
      const [a, b] = pull.ranges[i]!;
      assert.deepEqual(await pull.pieces[i]!, model.subarray(a, b + 1), `range ${i} served while the blob arrives`);
    }
    ollama.release();
    assert.deepEqual(Buffer.concat(await Promise.all(pull.pieces)), model);
    assert.equal(ollama.fetchCount(img.model), 1);

    // stored in the bucket: the redirect now goes to S3 itself, and upstream is not asked again
    const get = await fetch(`${mirror.base}/v2/ol/library/big/blobs/${img.model}`, { redirect: "manual" });
    assert.equal(get.status, 307);
    await get.arrayBuffer();
    assert.ok(get.headers.get("location")!.startsWith(S3_PEER!.endpoint), `a pre-signed S3 URL: ${get.headers.get("location")}`);
    assert.equal(sha256(await ollamaPullBlob(mirror.base, "ol/library/big", img.model)), img.model);
    assert.equal(ollama.fetchCount(img.model), 1);
  });
});
