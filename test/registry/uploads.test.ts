/**
 * Upload sessions under stress, in process with real HTTP: a PATCH cut mid-body, a chunked body that
 * contradicts its Content-Range, two clients pushing the same blob, a full disk, expiry, tampered
 * locations, timeouts, signed blob URLs; finishing cut at each step (a throwing fault hook and a fresh
 * server on the same root; the real process killed there: upload-faults.test.ts).
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FsDriver } from "../../registry/server/storage/fs.js";
import type { StorageDriver, WriteAtOptions } from "../../registry/server/storage/driver.js";
import { UPLOAD_FAULT_POINTS, type UploadFaultPoint } from "../../registry/server/upload-sessions.js";
import { expectError, pushBlob, randomRepo, resolveLocation, sha256, startUpload, withQuery } from "./oci-client.js";
import { startInProcess, tempDir, type InProcessRegistry } from "./peers.js";

const servers: InProcessRegistry[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function serve(options: Parameters<typeof startInProcess>[0] = {}): Promise<InProcessRegistry> {
  const s = await startInProcess(options);
  servers.push(s);
  return s;
}

async function offsetOf(location: string): Promise<number> {
  const res = await fetch(location);
  assert.equal(res.status, 204, await res.text());
  const m = /^0-(\d+)$/.exec(res.headers.get("range") ?? "")!;
  return Number(m[1]) + (res.headers.get("range") === "0-0" ? 0 : 1);
}

/** Streams `sent` bytes of a declared longer body, then destroys the connection. */
async function cutPatch(location: string, body: Buffer, sent: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const req = request(location, { method: "PATCH", headers: { "content-type": "application/octet-stream", "content-length": String(body.length) } });
    req.on("error", () => resolve());
    req.on("response", (r) => { r.resume(); resolve(); });
    req.write(body.subarray(0, sent), () => setTimeout(() => req.destroy(), 100));
  });
}

/** A PATCH with a chunked body (no Content-Length, as docker sends) under `Content-Range: range`. */
function chunkedPatch(location: string, body: Buffer, range: string): Promise<{ status: number; range: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(location, { method: "PATCH", headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked", "content-range": range } });
    req.on("error", reject);
    req.on("response", (r) => {
      let text = "";
      r.on("data", (c: Buffer) => (text += c.toString()));
      r.on("end", () => resolve({ status: r.statusCode!, range: r.headers.range, body: text }));
    });
    for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
    req.end();
  });
}

describe("upload sessions", () => {
  it("a PATCH cut mid-body keeps what was stored; the client resumes from GET status", async () => {
    const s = await serve();
    const repo = randomRepo("cut");
    const blob = randomBytes(5 * 1024 * 1024);
    const loc = await startUpload(s.base, repo);
    await cutPatch(loc, blob, 3 * 1024 * 1024);
    let offset = -1;
    // the server notices the cut asynchronously; the persisted offset settles
    for (let i = 0; i < 50; i++) {
      const o = await offsetOf(loc);
      if (o === offset && o > 0) break;
      offset = o;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(offset > 0 && offset <= 3 * 1024 * 1024, `resumes at ${offset}`);
    const p = await fetch(loc, { method: "PATCH", body: blob.subarray(offset), headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${blob.length - 1}` } });
    assert.equal(p.status, 202, await p.text());
    const put = await fetch(withQuery(loc, `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
  });

  it("a chunked PATCH body longer or shorter than its Content-Range → 416 with the session's Range; nothing of the session is lost", async () => {
    const s = await serve();
    const repo = randomRepo("crange");
    // the case: 200 bytes under Content-Range 0-99, on a fresh session
    const fresh = await startUpload(s.base, repo);
    const over = await chunkedPatch(fresh, randomBytes(200), "0-99");
    assert.equal(over.status, 416, over.body);
    assert.equal(JSON.parse(over.body).errors[0].code, "RANGE_INVALID");
    assert.equal(over.range, "0-0");
    assert.equal(await offsetOf(fresh), 0);
    // a session holding 50 bytes keeps them, whatever a contradicting chunk sends
    const blob = randomBytes(150);
    const loc = await startUpload(s.base, repo);
    const first = await fetch(loc, { method: "PATCH", body: blob.subarray(0, 50), headers: { "content-type": "application/octet-stream", "content-range": "0-49" } });
    assert.equal(first.status, 202);
    for (const body of [randomBytes(200), randomBytes(60), randomBytes(3 * 1024 * 1024)]) {
      const r = await chunkedPatch(loc, body, "50-149");
      assert.equal(r.status, 416, r.body);
      assert.equal(r.range, "0-49");
      assert.equal(await offsetOf(loc), 50);
    }
    const ok = await chunkedPatch(loc, blob.subarray(50), "50-149");
    assert.equal(ok.status, 202, ok.body);
    assert.equal(ok.range, "0-149");
    const put = await fetch(withQuery(loc, `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
    const got = await fetch(`${s.base}/v2/${repo}/blobs/${sha256(blob)}`);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(blob));
  });

  it("finishing cut at each step (server replaced on the same root): a retried PUT, GET, DELETE or the sweep end well, never 500", async () => {
    const finishPoints = UPLOAD_FAULT_POINTS.filter((p) => p.startsWith("upload-finish:"));
    for (const point of finishPoints) {
      for (const next of ["PUT", "GET", "DELETE", "sweep"] as const) {
        const root = await tempDir("mf-finish-cut-");
        dirs.push(root);
        const repo = randomRepo("cut");
        const blob = randomBytes(300 * 1024);
        const d = sha256(blob);
        const label = `${point} then ${next}`;
        // the first server "dies" at the point: the hook throws, nothing after it runs
        let armed = true;
        const fault = (p: UploadFaultPoint) => {
          if (p === point && armed) {
            armed = false;
            throw new Error(`injected crash at ${p}`);
          }
        };
        const a = await startInProcess({ fault }, root);
        let loc: string;
        try {
          loc = await startUpload(a.base, repo);
          const p1 = await fetch(loc, { method: "PATCH", body: blob.subarray(0, 100_000), headers: { "content-type": "application/octet-stream", "content-range": "0-99999" } });
          assert.equal(p1.status, 202);
          // the closing PUT carries the last chunk
          const cut = await fetch(withQuery(loc, `digest=${d}`), { method: "PUT", body: blob.subarray(100_000), headers: { "content-type": "application/octet-stream", "content-range": `100000-${blob.length - 1}` } });
          assert.equal(cut.status, 500, `${label}: the injected crash`);
          await cut.arrayBuffer();
          assert.equal(armed, false);
        } finally {
          await a.close();
        }

        let now = Date.now();
        const b = await startInProcess({ clock: () => now, uploadExpiryMs: 60_000 }, root);
        try {
          const at = loc.replace(/^http:\/\/[^/]+/, b.base);
          const sessionLeft = point === "upload-finish:after-data";
          if (next === "PUT") {
            // the same PUT sent blindly again (no Content-Range, as a client that never asks GET would)
            const again = await fetch(withQuery(at, `digest=${d}`), { method: "PUT", body: blob.subarray(100_000), headers: { "content-type": "application/octet-stream" } });
            if (point === "upload-finish:after-remove") await expectError(again, 404, "BLOB_UPLOAD_UNKNOWN");
            else assert.equal(again.status, 201, `${label}: ${await again.text()}`);
          } else if (next === "GET") {
            const st = await fetch(at);
            // cut before its digest was recorded, the PUT counts for nothing: the session is as before it
            if (sessionLeft) assert.equal(st.headers.get("range"), "0-99999", label);
            else await expectError(st, 404, "BLOB_UPLOAD_UNKNOWN");
          } else if (next === "DELETE") {
            const del = await fetch(at, { method: "DELETE" });
            if (sessionLeft) assert.equal(del.status, 204, label);
            else await expectError(del, 404, "BLOB_UPLOAD_UNKNOWN");
          } else {
            now += 120_000;
            await b.app.sweepUploads();
          }
          // once the digest was verified the blob ends up linked, whoever finishes the session
          const head = await fetch(`${b.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" });
          const linked = !sessionLeft || next === "PUT";
          assert.equal(head.status, linked ? 200 : 404, `${label}: HEAD of the blob`);
          if (linked) {
            const got = await fetch(`${b.base}/v2/${repo}/blobs/${d}`);
            assert.equal(sha256(Buffer.from(await got.arrayBuffer())), d, label);
          }
          // an emptied uploads folder is removed, as an emptied prefix disappears on S3
          const left = await readdir(join(root, "uploads")).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? [] : Promise.reject(e)));
          assert.equal(left.length, sessionLeft && next === "GET" ? 1 : 0, `${label}: sessions left: ${left.join(", ")}`);
          // a new upload of the same blob to the same repository completes
          assert.equal(await pushBlob(b.base, repo, blob), d);
        } finally {
          await b.close();
        }
      }
    }
  });

  it("two clients pushing the same blob at once both succeed, one copy stored, no session left", async () => {
    const s = await serve();
    const blob = randomBytes(8 * 1024 * 1024);
    const d = sha256(blob);
    const push = async (repo: string) => {
      const loc = await startUpload(s.base, repo);
      const p = await fetch(loc, { method: "PATCH", body: blob, headers: { "content-type": "application/octet-stream" } });
      assert.equal(p.status, 202);
      const put = await fetch(withQuery(resolveLocation(s.base, p), `digest=${d}`), { method: "PUT" });
      assert.equal(put.status, 201, await put.text());
    };
    await Promise.all([push("same/one"), push("same/two"), push("same/one")]);
    const hex = d.slice("sha256:".length);
    assert.deepEqual(await readdir(join(s.root, "blobs", "sha256", hex.slice(0, 2))), [hex]);
    assert.deepEqual(await readdir(join(s.root, "blobs", "sha256", hex.slice(0, 2), hex)), ["data"]);
    // (the emptied uploads/ directory goes with its last session)
    assert.deepEqual(await readdir(join(s.root, "uploads")).catch(() => []), []);
    for (const repo of ["same/one", "same/two"]) {
      const head = await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" });
      assert.equal(head.status, 200);
    }
  });

  it("a full disk (ENOSPC) fails with a clear 507 and the session resumes afterwards", async () => {
    const root = await tempDir("mf-enospc-");
    dirs.push(root);
    const fs = new FsDriver({ root });
    let budget = Infinity;
    // A driver whose disk fills after `budget` more bytes.
    const full: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, {
      async writeAt(path: string, offset: number, source: AsyncIterable<Uint8Array>, options?: WriteAtOptions) {
        const limited = async function* () {
          for await (const c of source) {
            if (c.length > budget) {
              const err = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
              yield c.subarray(0, budget);
              throw err;
            }
            budget -= c.length;
            yield c;
          }
        };
        return fs.writeAt(path, offset, limited(), options);
      },
    });
    const s = await serve({ storage: full });
    const repo = randomRepo("full");
    const blob = randomBytes(3 * 1024 * 1024);
    const loc = await startUpload(s.base, repo);
    budget = 2 * 1024 * 1024;
    const res = await fetch(loc, { method: "PATCH", body: blob, headers: { "content-type": "application/octet-stream" } });
    assert.equal(res.status, 507);
    const body = await res.json() as { errors: { code: string; message: string }[] };
    assert.match(body.errors[0]!.message, /no space left on device/);
    const offset = await offsetOf(loc);
    assert.ok(offset <= 2 * 1024 * 1024);
    budget = Infinity;
    const p = await fetch(loc, { method: "PATCH", body: blob.subarray(offset), headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${blob.length - 1}` } });
    assert.equal(p.status, 202, await p.text());
    const put = await fetch(withQuery(loc, `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
  });

  it("expired sessions are swept; a swept location answers 404 BLOB_UPLOAD_UNKNOWN", async () => {
    let now = Date.now();
    const s = await serve({ clock: () => now, uploadExpiryMs: 60_000 });
    const repo = randomRepo("exp");
    const old = await startUpload(s.base, repo);
    now += 30_000;
    const fresh = await startUpload(s.base, repo);
    now += 40_000;
    assert.equal(await s.app.sweepUploads(), 1);
    await expectError(await fetch(old), 404, "BLOB_UPLOAD_UNKNOWN");
    assert.equal((await fetch(fresh)).status, 204);
  });

  it("locations are signed and bound to their repository", async () => {
    const s = await serve();
    const repo = randomRepo("sig");
    const loc = await startUpload(s.base, repo);
    const tampered = loc.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
    await expectError(await fetch(tampered), 404, "BLOB_UPLOAD_UNKNOWN");
    const other = loc.replace(`/v2/${repo}/`, "/v2/other/repo/");
    await expectError(await fetch(other), 404, "BLOB_UPLOAD_UNKNOWN");
    const forged = loc.replace(/uploads\/[0-9a-f-]{36}/, "uploads/00000000-0000-0000-0000-000000000000");
    await expectError(await fetch(forged), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("blob routes have no request timeout (idle timeout only); other routes do", async () => {
    const s = await serve({ requestTimeoutMs: 300 });
    const repo = randomRepo("slow");
    const loc = await startUpload(s.base, repo);
    const blob = randomBytes(64 * 1024);
    // A PATCH dribbling for ~1 s (over the 300 ms request timeout) still succeeds.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(loc, { method: "PATCH", headers: { "content-type": "application/octet-stream", "content-length": String(blob.length) } });
      req.on("error", reject);
      req.on("response", (r) => { r.resume(); resolve(r.statusCode!); });
      let i = 0;
      const tick = setInterval(() => {
        req.write(blob.subarray(i * 8192, (i + 1) * 8192));
        if (++i === 8) { clearInterval(tick); req.end(); }
      }, 130);
    });
    assert.equal(status, 202);
    assert.equal(await offsetOf(loc), blob.length);
    // A manifest PUT dribbling as slowly is cut.
    const cut = await new Promise<string>((resolve) => {
      const req = request(`${s.base}/v2/${repo}/manifests/t`, { method: "PUT", headers: { "content-type": "application/vnd.oci.image.manifest.v1+json", "content-length": "1000" } });
      req.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
      req.on("response", (r) => { r.resume(); resolve(`status ${r.statusCode}`); });
      req.write("{");
      setTimeout(() => req.write(" "), 200);
    });
    assert.match(cut, /^error /);
  });

  it("signed blob URLs serve bytes and ranges without auth; tampered or expired → 403 DENIED", async () => {
    let now = Date.now();
    const s = await serve({ clock: () => now, signedUrlTtlMs: 1000 });
    const repo = randomRepo("url");
    const data = randomBytes(2000);
    const d = await pushBlob(s.base, repo, data);
    const res = await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { redirect: "manual" });
    assert.equal(res.status, 307);
    const url = res.headers.get("location")!;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\//);
    const ranged = await fetch(url, { headers: { range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), data.subarray(10, 20));
    await expectError(await fetch(url.replace(/sig=(.)/, (_, c: string) => `sig=${c === "_" ? "A" : "_"}`)), 403, "DENIED");
    now += 2000;
    await expectError(await fetch(url), 403, "DENIED");
    const head = await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD", redirect: "manual" });
    assert.equal(head.status, 200, "HEAD is never redirected");
  });

  it("redirect URLs follow --public-url, else the Host, or X-Forwarded-Proto/Host from a trusted proxy only", async () => {
    const s = await serve({ publicUrl: "https://models.example.com/" });
    const repo = randomRepo("pub");
    const d = sha256("p");
    const mono = await fetch(`${s.base}/v2/${repo}/blobs/uploads/?digest=${d}`, { method: "POST", body: "p", headers: { "content-type": "application/octet-stream" } });
    assert.equal(mono.status, 201);
    assert.match(mono.headers.get("location")!, /^https:\/\/models\.example\.com\/v2\//);
    const res = await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { redirect: "manual" });
    assert.match(res.headers.get("location")!, /^https:\/\/models\.example\.com\/_mf\/blobs\/sha256:/);
    const forwarded = { "x-forwarded-proto": "https", "x-forwarded-host": "reg.internal:8443" };
    const t = await serve({ trustProxy: ["127.0.0.1"] });
    const d2 = await pushBlob(t.base, repo, Buffer.from("q"));
    const res2 = await fetch(`${t.base}/v2/${repo}/blobs/${d2}`, { redirect: "manual", headers: forwarded });
    assert.match(res2.headers.get("location")!, /^https:\/\/reg\.internal:8443\/_mf\/blobs\//);
    // a client's own forwarded headers are not believed: the Location names the Host it connected to
    for (const untrusted of [await serve(), await serve({ trustProxy: ["10.0.0.0/8"] })]) {
      const d3 = await pushBlob(untrusted.base, repo, Buffer.from("r"));
      const res3 = await fetch(`${untrusted.base}/v2/${repo}/blobs/${d3}`, { redirect: "manual", headers: forwarded });
      assert.equal(new URL(res3.headers.get("location")!).origin, untrusted.base);
    }
  });

  it("manifests over the cap → 413; deletes off → 405 UNSUPPORTED", async () => {
    const s = await serve({ manifestMaxBytes: 1000, allowDelete: false });
    const repo = randomRepo("cap");
    const big = JSON.stringify({ schemaVersion: 2, pad: "x".repeat(2000) });
    const res = await fetch(`${s.base}/v2/${repo}/manifests/t`, { method: "PUT", body: big, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(res.status, 413);
    assert.equal((await res.json() as { errors: { code: string }[] }).errors[0]!.code, "SIZE_INVALID");
    const d = await pushBlob(s.base, repo, Buffer.from("keep"));
    await expectError(await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    await expectError(await fetch(`${s.base}/v2/${repo}/manifests/${d}`, { method: "DELETE" }), 405, "UNSUPPORTED");
  });
});
