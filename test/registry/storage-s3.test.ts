/**
 * The storage-driver suite, unchanged, against the S3 driver on a real engine (Ceph's radosgw in CI);
 * then what only S3 has: multipart parts and staged objects, cutting back after a crash, links made by
 * move, pre-signed URLs, exclusive creates, and that nothing is left behind in the bucket.
 */
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { S3Driver } from "../../registry/server/storage/s3.js";
import { META_KIND, META_MTIME, META_SIZE, META_TARGET, S3Objects } from "../../registry/server/storage/s3-objects.js";
import { loadWrite, markLinked, sealWrite, type WriteContext } from "../../registry/server/storage/s3-write.js";
import { storageDriverSuite } from "./storage-suite.js";
import { openMultipartUploads, removeS3Prefix, s3Driver, s3Prefix, S3_MISSING, S3_PEER } from "./s3-peer.js";

const MiB = 1 << 20;

if (S3_MISSING) {
  describe("storage driver: s3", () => {
    it("runs the driver suite against S3", { skip: S3_MISSING }, () => {});
  });
} else {
  storageDriverSuite("s3", async () => {
    const prefix = s3Prefix("driver");
    const driver = s3Driver(prefix);
    return {
      driver,
      cleanup: async () => {
        driver.close();
        await removeS3Prefix(prefix);
      },
    };
  });
}

async function bytes(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function source(...parts: Buffer[]): AsyncIterable<Uint8Array> {
  return Readable.from(parts);
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("S3 driver: multipart writes, links and cleanup", { skip: S3_MISSING }, () => {
  let prefix: string;
  let d: S3Driver;
  let objects: S3Objects;
  const internal = (what: string) => objects.listAll(`${prefix}/.mf/${what}/`);

  before(() => {
    prefix = s3Prefix("multipart");
    d = s3Driver(prefix);
    objects = new S3Objects(S3_PEER!);
  });
  after(async () => {
    d?.close();
    objects?.close();
    if (prefix) await removeS3Prefix(prefix);
  });

  it("small writes are staged objects, a full part goes to S3 with them; a crash's cut-back reverts to them", async () => {
    const data = randomBytes(30 * MiB);
    const seen: Buffer[] = [];
    const onWritten = (c: Buffer) => seen.push(c);
    // 3 MiB: no legal part, so it is staged (readable back)
    assert.equal(await d.writeAt("w1/data", 0, source(data.subarray(0, 3 * MiB)), { onWritten }), 3 * MiB);
    assert.equal((await internal("staged")).length, 1);
    assert.deepEqual(await bytes(await d.read("w1/data", { start: MiB, end: MiB + 99 })), data.subarray(MiB, MiB + 100));
    // 20 MiB more: the first part begins with the staged 3 MiB; the session "crashes" before it persists 23 MiB
    assert.equal(await d.writeAt("w1/data", 3 * MiB, source(data.subarray(3 * MiB, 23 * MiB))), 20 * MiB);
    assert.equal((await d.stat("w1/data"))!.size, 23 * MiB);
    await assert.rejects(d.read("w1/data"), /open S3 multipart upload/);
    // ... so the next request continues at its persisted 3 MiB: the part is dropped, the staged bytes stay
    assert.equal(await d.writeAt("w1/data", 3 * MiB, source(data.subarray(3 * MiB, 10 * MiB), data.subarray(10 * MiB, 30 * MiB))), 27 * MiB);
    await d.move("w1/data", "blob/one");
    const info = await d.stat("blob/one");
    assert.equal(info!.size, 30 * MiB);
    assert.equal(sha(await bytes(await d.read("blob/one"))), sha(data));
    assert.deepEqual(await bytes(await d.read("blob/one", { start: 16 * MiB - 5, end: 16 * MiB + 4 })), data.subarray(16 * MiB - 5, 16 * MiB + 5));
    assert.equal(await d.stat("w1/data"), null);
    assert.deepEqual(await internal("staged"), [], "staged objects are removed once the write is moved");
    assert.equal((await internal("data")).length, 1, "the blob is one completed multipart object, linked");
    assert.equal(await openMultipartUploads(prefix), 0);
  });

  it("cutting back inside a part that did not begin with staged bytes is refused (no caller asks it)", async () => {
    await d.writeAt("w2/data", 0, source(randomBytes(20 * MiB)));
    await assert.rejects(d.writeAt("w2/data", MiB, source(Buffer.from("x"))), (e: { code?: string; message: string }) => e.code === "STORE_CORRUPT" && /inside a part/.test(e.message));
    await d.delete("w2");
    assert.equal(await openMultipartUploads(prefix), 0, "deleting a write aborts its multipart upload");
  });

  it("a blob link serves a pre-signed URL with ranges, survives touch, and takes its data with it when deleted", async () => {
    const data = randomBytes(6 * MiB + 7);
    const earlier = await internal("data");
    await d.writeAt("w3/data", 0, source(data));
    await d.move("w3/data", "blobs/x/data");
    const target = (await internal("data")).filter((k) => !earlier.includes(k));
    assert.equal(target.length, 1);
    const url = await d.signedReadUrl("blobs/x/data", 60_000);
    assert.ok(url && new URL(url).host === new URL(S3_PEER!.endpoint).host);
    const res = await fetch(url, { headers: { range: "bytes=10-19" } });
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(10, 20));
    const before = (await d.stat("blobs/x/data"))!.modifiedMs;
    await new Promise((r) => setTimeout(r, 20));
    await d.touch("blobs/x/data");
    assert.ok((await d.stat("blobs/x/data"))!.modifiedMs > before);
    assert.equal(sha(await bytes(await d.read("blobs/x/data"))), sha(data), "touch keeps the link's target");
    await d.delete("blobs/x");
    assert.equal(await d.stat("blobs/x/data"), null);
    assert.equal(await objects.head(target[0]!), null, "the linked data went with the link");
    await assert.rejects(d.read("blobs/x/data"), (e: { code?: string }) => e.code === "BLOB_UNKNOWN");
  });

  it("an abandoned write removed with its directory leaves no upload, part or staged object", async () => {
    await d.writeAt("uploads/u1/data", 0, source(randomBytes(7 * MiB)));
    await d.writeAt("uploads/u1/data", 7 * MiB, source(randomBytes(MiB)));
    await d.putContent("uploads/u1/state.json", Buffer.from("{}"));
    assert.equal(await openMultipartUploads(prefix), 1);
    await d.delete("uploads/u1");
    assert.deepEqual(await d.list("uploads"), []);
    assert.equal(await openMultipartUploads(prefix), 0);
    assert.deepEqual(await internal("staged"), []);
  });

  it("a move that dies between linking the blob and removing the write: discarding the write keeps the linked data", async () => {
    const data = randomBytes(6 * MiB);
    await d.writeAt("uploads/u2/data", 0, source(data));
    // what S3Driver.move does, stopped before it deletes the write state
    const ctx: WriteContext = { objects, internal: `${prefix}/.mf/`, minPart: 5 * MiB, partSize: 16 * MiB, clock: Date.now };
    const src = `${prefix}/uploads/u2/data`;
    const dst = `${prefix}/blobs/y/data`;
    const st = (await loadWrite(ctx, src))!;
    const sealed = await sealWrite(ctx, st);
    assert.ok("dataKey" in sealed);
    await markLinked(ctx, src, st, dst);
    await objects.put(dst, Buffer.from("{}"), { [META_KIND]: "link", [META_TARGET]: sealed.dataKey, [META_SIZE]: String(st.size), [META_MTIME]: String(Date.now()) });
    // the session is later swept (or finished again): its directory goes, the blob stays whole
    await d.delete("uploads/u2");
    assert.equal(sha(await bytes(await d.read("blobs/y/data"))), sha(data));
    await d.delete("blobs/y");
    assert.equal(await objects.head(sealed.dataKey), null);
  });

  it("putContentIfAbsent creates once; a second create of the same path (another replica) loses", async () => {
    const other = s3Driver(prefix);
    try {
      const results = await Promise.all([d.putContentIfAbsent("nonce/x", Buffer.from("1")), other.putContentIfAbsent("nonce/x", Buffer.from("2"))]);
      assert.deepEqual(results.sort(), [false, true]);
      assert.equal(await d.putContentIfAbsent("nonce/x", Buffer.from("3")), false);
    } finally {
      other.close();
    }
  });
});
