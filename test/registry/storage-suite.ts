/**
 * The storage-driver conformance suite, written once as a function of a driver factory: every driver
 * (filesystem now, S3 later) must pass it.
 */
import { strict as assert } from "node:assert";
import { Readable } from "node:stream";
import { describe, it, before, after } from "node:test";
import type { StorageDriver } from "../../registry/server/storage/driver.js";

export interface DriverFixture {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function source(...parts: string[]): AsyncIterable<Uint8Array> {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

/** A source that yields `parts` and then fails, like a connection cut mid-body. */
async function* failingSource(parts: string[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
  throw new Error("connection reset");
}

export function storageDriverSuite(name: string, makeFixture: () => Promise<DriverFixture>): void {
  describe(`storage driver: ${name}`, () => {
    let fx: DriverFixture;
    let d: StorageDriver;
    before(async () => {
      fx = await makeFixture();
      d = fx.driver;
    });
    after(async () => fx.cleanup());

    it("stat of a missing path is null; getContent null; list empty", async () => {
      assert.equal(await d.stat("nope/x"), null);
      assert.equal(await d.getContent("nope/x"), null);
      assert.deepEqual(await d.list("nope"), []);
    });

    it("putContent then getContent, stat and list; prefixes are directories", async () => {
      await d.putContent("a/b/c.txt", Buffer.from("hello"));
      assert.equal((await d.getContent("a/b/c.txt"))!.toString(), "hello");
      const s = await d.stat("a/b/c.txt");
      assert.equal(s!.size, 5);
      assert.equal(s!.isDir, false);
      assert.ok(Math.abs(s!.modifiedMs - Date.now()) < 60_000);
      assert.equal((await d.stat("a/b"))!.isDir, true);
      await d.putContent("a/b/a.txt", Buffer.from("x"));
      assert.deepEqual(await d.list("a/b"), ["a.txt", "c.txt"]);
      await d.putContent("a/b/c.txt", Buffer.from("replaced"));
      assert.equal((await d.getContent("a/b/c.txt"))!.toString(), "replaced");
    });

    it("getContent refuses objects over maxBytes", async () => {
      await d.putContent("big/obj", Buffer.alloc(100));
      await assert.rejects(d.getContent("big/obj", 10));
      assert.equal((await d.getContent("big/obj", 100))!.length, 100);
    });

    it("read streams whole objects and inclusive spans; missing → BLOB_UNKNOWN", async () => {
      await d.putContent("r/obj", Buffer.from("0123456789"));
      assert.equal(await text(await d.read("r/obj")), "0123456789");
      assert.equal(await text(await d.read("r/obj", { start: 2, end: 5 })), "2345");
      assert.equal(await text(await d.read("r/obj", { start: 9, end: 9 })), "9");
      await assert.rejects(d.read("r/missing"), (e: { code?: string }) => e.code === "BLOB_UNKNOWN");
    });

    it("writeAt creates at 0, appends at the end, reports every written chunk in order", async () => {
      const seen: string[] = [];
      const n1 = await d.writeAt("w/data", 0, source("ab", "cd"), { onWritten: (c) => seen.push(c.toString()) });
      assert.equal(n1, 4);
      const n2 = await d.writeAt("w/data", 4, source("ef"), { onWritten: (c) => seen.push(c.toString()) });
      assert.equal(n2, 2);
      assert.deepEqual(seen, ["ab", "cd", "ef"]);
      assert.equal(await text(await d.read("w/data")), "abcdef");
    });

    it("writeAt discards bytes past the offset first (the persisted offset is the truth)", async () => {
      await d.writeAt("t/data", 0, source("0123456789"));
      await d.writeAt("t/data", 4, source("XY"));
      assert.equal(await text(await d.read("t/data")), "0123XY");
      await d.writeAt("t/data", 2, source());
      assert.equal((await d.stat("t/data"))!.size, 2);
    });

    it("writeAt past the stored size is refused; at a missing object only offset 0 creates", async () => {
      await d.writeAt("g/data", 0, source("abc"));
      await assert.rejects(d.writeAt("g/data", 10, source("x")));
      await assert.rejects(d.writeAt("g/missing", 5, source("x")));
    });

    it("a failing source leaves exactly the reported bytes stored (after truncation to them)", async () => {
      const seen: Buffer[] = [];
      await assert.rejects(d.writeAt("f/data", 0, failingSource(["one", "two"]), { onWritten: (c) => seen.push(c) }), /connection reset/);
      const reported = Buffer.concat(seen).length;
      // the caller persists `reported`; the next write at that offset must find at least that many bytes
      assert.ok((await d.stat("f/data"))!.size >= reported);
      await d.writeAt("f/data", reported, source("!"));
      assert.equal(await text(await d.read("f/data")), Buffer.concat([...seen, Buffer.from("!")]).toString());
    });

    it("writeAt streams large sources with constant chunk reporting", async () => {
      const chunk = Buffer.alloc(256 * 1024, 7);
      async function* many() {
        for (let i = 0; i < 40; i++) yield chunk;
      }
      let total = 0;
      const n = await d.writeAt("l/data", 0, many(), { onWritten: (c) => (total += c.length) });
      assert.equal(n, 40 * chunk.length);
      assert.equal(total, n);
      assert.equal((await d.stat("l/data"))!.size, n);
    });

    it("move makes the object appear at the target (replacing it) and vanish at the source", async () => {
      await d.putContent("m/src", Buffer.from("payload"));
      await d.putContent("m2/deep/dst", Buffer.from("old"));
      await d.move("m/src", "m2/deep/dst");
      assert.equal(await d.stat("m/src"), null);
      assert.equal((await d.getContent("m2/deep/dst"))!.toString(), "payload");
      await d.move("m/src2", "m/x").then(
        () => assert.fail("moving a missing object must fail"),
        (e: { code?: string }) => assert.equal(e.code, "BLOB_UNKNOWN"),
      );
    });

    it("delete removes objects and whole prefixes; deleting nothing is fine", async () => {
      await d.putContent("del/a/1", Buffer.from("1"));
      await d.putContent("del/a/2", Buffer.from("2"));
      await d.putContent("del/b", Buffer.from("3"));
      await d.delete("del/a");
      assert.deepEqual(await d.list("del"), ["b"]);
      await d.delete("del/b");
      await d.delete("del/none");
      assert.equal(await d.stat("del/b"), null);
    });

    it("touch moves the modification time forward; missing → BLOB_UNKNOWN", async () => {
      await d.putContent("touch/x", Buffer.from("x"));
      const before = (await d.stat("touch/x"))!.modifiedMs;
      await new Promise((r) => setTimeout(r, 30));
      await d.touch("touch/x");
      assert.ok((await d.stat("touch/x"))!.modifiedMs > before);
      await assert.rejects(d.touch("touch/missing"), (e: { code?: string }) => e.code === "BLOB_UNKNOWN");
    });

    it("names containing .tmp- are ordinary names: listed, read and deleted like any other", async () => {
      // a valid repository (team/model.tmp-v2) and tag (v1.tmp-abc): nothing may hide them
      await d.putContent("tmpnames/team/model.tmp-v2/_manifests/tags/v1.tmp-abc", Buffer.from("sha256:1"));
      await d.putContent("tmpnames/team/model.tmp-v2/_manifests/tags/v1", Buffer.from("sha256:2"));
      await d.putContent("tmpnames/team/model/x", Buffer.from("3"));
      assert.deepEqual(await d.list("tmpnames/team"), ["model", "model.tmp-v2"]);
      assert.deepEqual(await d.list("tmpnames/team/model.tmp-v2/_manifests/tags"), ["v1", "v1.tmp-abc"]);
      assert.equal((await d.getContent("tmpnames/team/model.tmp-v2/_manifests/tags/v1.tmp-abc"))!.toString(), "sha256:1");
      await d.delete("tmpnames/team/model.tmp-v2/_manifests/tags/v1.tmp-abc");
      assert.deepEqual(await d.list("tmpnames/team/model.tmp-v2/_manifests/tags"), ["v1"]);
    });

    it("a prefix exists only while something is under it: deleting the last object removes it", async () => {
      await d.putContent("prune/a/b/c/one", Buffer.from("1"));
      await d.putContent("prune/keep", Buffer.from("k"));
      await d.delete("prune/a/b/c/one");
      assert.equal(await d.stat("prune/a/b/c"), null);
      assert.equal(await d.stat("prune/a"), null);
      assert.deepEqual(await d.list("prune"), ["keep"]);
      // and writing under a removed prefix brings it back
      await d.putContent("prune/a/b/two", Buffer.from("2"));
      assert.deepEqual(await d.list("prune/a"), ["b"]);
      assert.equal(await d.writeAt("prune/w/data", 0, source("x")), 1);
      await d.move("prune/w/data", "prune/m/n/data");
      assert.equal(await d.stat("prune/w"), null, "a move empties its source prefix");
      assert.equal((await d.getContent("prune/m/n/data"))!.toString(), "x");
    });

    it("refuses paths with .., empty or absolute segments", async () => {
      for (const p of ["../x", "a/../b", "/abs", "a//b", ""]) {
        await assert.rejects(d.stat(p), /invalid path/);
        await assert.rejects(d.putContent(p, Buffer.from("x")), /invalid path/);
      }
    });
  });
}
