/**
 * Fault tests against the real `mf registry serve` process: SIGKILL mid chunked upload, SIGTERM with an
 * upload in flight, restart on the same root, resume, right digest. Also the YAML config file.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { expectError, pushBlob, randomRepo, rebase, sha256, startUpload, uploadRange, withQuery } from "./oci-client.js";
import { spawnMfRegistry, tempDir, type SpawnedRegistry } from "./peers.js";

const running = new Set<SpawnedRegistry>();
const dirs: string[] = [];
after(async () => {
  for (const r of running) r.child.kill("SIGKILL");
  await Promise.all([...running].map((r) => r.exited));
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function start(root: string, args: string[] = []): Promise<SpawnedRegistry> {
  const r = await spawnMfRegistry(root, args);
  running.add(r);
  void r.exited.then(() => running.delete(r));
  return r;
}

/** Sends a PATCH whose declared body is `total` bytes but only writes `sent` of them; resolves once written. */
function partialPatch(location: string, body: Buffer, sent: number, start: number): Promise<{ abort(): void; done: Promise<unknown> }> {
  return new Promise((resolve) => {
    const req = request(location, {
      method: "PATCH",
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(body.length),
        "content-range": `${start}-${start + body.length - 1}`,
      },
    });
    const done = new Promise((res) => {
      req.on("error", res);
      req.on("response", (r) => { r.resume(); r.on("end", res); });
    });
    req.write(body.subarray(0, sent), () => resolve({ abort: () => req.destroy(), done }));
  });
}

async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("registry process faults", () => {
  it("SIGKILL mid chunked upload: restart on the same root, status, finish, right digest", async () => {
    const root = await tempDir("mf-faults-");
    dirs.push(root);
    const first = await start(root);
    const repo = randomRepo("kill");
    const blob = randomBytes(3 * 1024 * 1024 + 123);
    const chunk1 = blob.subarray(0, 1024 * 1024);
    let loc = await startUpload(first.base, repo);
    const uuid = /\/([0-9a-f-]{36})\.[^/]+$/.exec(new URL(loc).pathname)![1]!;
    const p1 = await fetch(loc, { method: "PATCH", body: chunk1, headers: { "content-type": "application/octet-stream", "content-range": `0-${chunk1.length - 1}` } });
    assert.equal(p1.status, 202);
    loc = new URL(p1.headers.get("location")!, first.base).toString();
    // The second chunk is half sent when the registry dies.
    const chunk2 = blob.subarray(chunk1.length, 3 * 1024 * 1024 + 1);
    const partial = await partialPatch(loc, chunk2, 1_600_000, chunk1.length);
    const dataFile = join(root, "uploads", uuid, "data");
    await waitFor(async () => (await stat(dataFile)).size > chunk1.length);
    first.child.kill("SIGKILL");
    assert.equal(await first.exited, "SIGKILL");
    partial.abort();
    await partial.done;
    assert.ok((await stat(dataFile)).size > chunk1.length, "bytes of the cut chunk lie past the persisted offset");

    const second = await start(root);
    loc = rebase(loc, second.base);
    const offset = await uploadRange(loc);
    assert.equal(offset, chunk1.length, "the persisted offset is the truth: the cut chunk's bytes are not counted");
    const rest = blob.subarray(offset);
    const p2 = await fetch(loc, { method: "PATCH", body: rest, headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${blob.length - 1}` } });
    assert.equal(p2.status, 202, await p2.text());
    const put = await fetch(withQuery(rebase(p2.headers.get("location")!, second.base), `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
    const get = await fetch(`${second.base}/v2/${repo}/blobs/${sha256(blob)}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), sha256(blob));
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0);
  });

  it("SIGTERM with an upload in flight parks it: exit 0, restart, resume where it stopped", async () => {
    const root = await tempDir("mf-faults-");
    dirs.push(root);
    const first = await start(root, ["--shutdown-grace", "500ms"]);
    const repo = randomRepo("term");
    const blob = randomBytes(4 * 1024 * 1024);
    let loc = await startUpload(first.base, repo);
    const partial = await partialPatch(loc, blob, 2_500_000, 0);
    await new Promise((r) => setTimeout(r, 300));
    first.child.kill("SIGTERM");
    assert.equal(await first.exited, 0, first.output());
    partial.abort();
    await partial.done;

    const second = await start(root);
    loc = rebase(loc, second.base);
    const offset = await uploadRange(loc);
    assert.ok(offset > 0 && offset <= 2_500_000, `parked at ${offset}`);
    const p = await fetch(loc, { method: "PATCH", body: blob.subarray(offset), headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${blob.length - 1}` } });
    assert.equal(p.status, 202, await p.text());
    const put = await fetch(withQuery(loc, `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
    second.child.kill("SIGTERM");
    assert.equal(await second.exited, 0);
  });

  it("--config YAML sets the same keys as the flags (redirect off, deletes off); the secret file is reused", async () => {
    const root = await tempDir("mf-faults-");
    dirs.push(root);
    const config = join(root, "registry.yml");
    const secretFile = join(root, "keys", "hmac.key");
    await writeFile(config, `redirect: false\ndelete: false\nsecret-file: ${secretFile}\nupload-expiry: 1h\n`);
    const first = await start(join(root, "data"), ["--config", config]);
    const health = await fetch(`${first.base}/healthz`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
    const repo = randomRepo("cfg");
    const d = await pushBlob(first.base, repo, Buffer.from("config test"));
    const get = await fetch(`${first.base}/v2/${repo}/blobs/${d}`, { redirect: "manual" });
    assert.equal(get.status, 200, "redirect: false in the file");
    assert.equal(await get.text(), "config test");
    await expectError(await fetch(`${first.base}/v2/${repo}/blobs/${d}`, { method: "DELETE" }), 405, "UNSUPPORTED");
    const loc = await startUpload(first.base, repo);
    first.child.kill("SIGTERM");
    await first.exited;
    // Flags win over the file; the generated secret is reused, so the old location stays valid.
    const second = await start(join(root, "data"), ["--config", config, "--redirect"]);
    const again = await fetch(`${second.base}/v2/${repo}/blobs/${d}`, { redirect: "manual" });
    assert.equal(again.status, 307);
    await again.arrayBuffer();
    const status = await fetch(rebase(loc, second.base));
    assert.equal(status.status, 204);
    second.child.kill("SIGTERM");
    await second.exited;
  });

  it("refuses a bad --addr with a clear message and exit code 1", async () => {
    const root = await tempDir("mf-faults-");
    dirs.push(root);
    await assert.rejects(spawnMfRegistry(root, ["--addr", "nonsense"]), /invalid --addr "nonsense"/);
  });
});
