/**
 * The resumable SHA-256 that upload sessions on S3 save beside their offset: equal to OpenSSL's for any
 * split of the input, across save/restore (as another replica continues an upload), in-thread and on the
 * worker thread.
 */
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ResumableSha256 } from "../../registry/server/storage/sha256-state.js";
import { ThreadedSha256 } from "../../registry/server/storage/sha256-worker.js";

const openssl = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("resumable SHA-256", () => {
  it("matches OpenSSL for the standard vectors and any split, saved to JSON and restored at every cut", () => {
    assert.equal(new ResumableSha256().hex(), openssl(Buffer.alloc(0)));
    assert.equal(new ResumableSha256().update(Buffer.from("abc")).hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(600), { maxLength: 6 }), (data, cuts) => {
      let h = new ResumableSha256();
      let at = 0;
      for (const c of [...cuts].sort((a, b) => a - b).map((x) => Math.min(x, data.length))) {
        h.update(data.subarray(at, c));
        at = c;
        h = new ResumableSha256(JSON.parse(JSON.stringify(h.save())));
        assert.equal(h.length, at);
      }
      h.update(data.subarray(at));
      assert.equal(h.hex(), openssl(data));
    }), { numRuns: 300 });
  });

  it("refuses an inconsistent saved state", () => {
    const s = new ResumableSha256().update(Buffer.from("hello")).save();
    assert.throws(() => new ResumableSha256({ ...s, length: 6 }), /inconsistent/);
    assert.throws(() => new ResumableSha256({ ...s, h: s.h.slice(1) }), /8 words/);
  });

  it("on the worker thread: the same digest, and a state that resumes in-thread or on the worker", async () => {
    const data = randomBytes(5 * 1024 * 1024 + 77);
    const first = new ThreadedSha256();
    for (let i = 0; i < 3 * 1024 * 1024; i += 64 * 1024) first.update(data.subarray(i, i + 64 * 1024));
    const { state, hex } = await first.snapshot();
    first.close();
    assert.equal(hex, openssl(data.subarray(0, 3 * 1024 * 1024)));
    const inThread = new ResumableSha256(state).update(data.subarray(3 * 1024 * 1024));
    assert.equal(inThread.hex(), openssl(data));
    const second = new ThreadedSha256(state);
    second.update(data.subarray(3 * 1024 * 1024, 4 * 1024 * 1024 + 3));
    second.update(data.subarray(4 * 1024 * 1024 + 3));
    assert.equal(await second.hex(), openssl(data));
    second.close();
  });
});
