/**
 * Faults between the client and a registry (the mf registry, through a fault-injecting proxy): a
 * corrupted byte, a reset connection, 503 and 429 answers, a forgotten or broken upload session, concurrent pulls of
 * one model, auth challenges and redirects to another host.
 */
import { strict as assert } from "node:assert";
import { readdir, rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { LocalStore } from "../../../core/store.js";
import { RegistryClient, UploadSessions, type Challenge } from "../../../registry/client/index.js";
import { buildModel, newStore, type Peer, startPeer } from "./helpers.js";
import { startProxy, type CannedAnswer, type CountingProxy } from "./proxy.js";

const MiB = 1024 * 1024;

describe("client faults", () => {
  let peer: Peer;
  let proxy: CountingProxy;
  let src: LocalStore;
  let name: string;
  let big: { digest: string; size: number };
  const client = new RegistryClient({ partSize: 512 * 1024, chunkSize: 512 * 1024, baseDelayMs: 10 });

  before(async () => {
    peer = await startPeer("mf");
    proxy = await startProxy(peer.base);
    src = await newStore();
    name = `${new URL(proxy.base).host}/faults/model:latest`;
    await buildModel(src, src.root, name, { bigLayerBytes: 3 * MiB });
    big = (await src.readModel(name)).manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
    await client.push(src, name, { insecure: true });
  });
  after(async () => {
    await client.close();
    await proxy.close();
    await peer.close();
    await rm(src.root, { recursive: true, force: true });
  });

  async function withStore(fn: (dst: LocalStore) => Promise<void>): Promise<void> {
    const dst = await newStore();
    try {
      await fn(dst);
    } finally {
      proxy.hooks = {};
      await rm(dst.root, { recursive: true, force: true });
    }
  }

  it("a registry that corrupts one byte: the pull fails verification and nothing is stored", () =>
    withStore(async (dst) => {
      let done = false;
      proxy.hooks.onBlobChunk = (c) => {
        if (done || c.digest !== big.digest || c.before + c.chunk.length < MiB) return;
        done = true;
        const copy = Buffer.from(c.chunk);
        copy[copy.length - 1]! ^= 0x20;
        return copy;
      };
      await assert.rejects(client.pull(dst, name, { insecure: true }), (e: Error & { code?: string }) =>
        e.code === "DIGEST_INVALID" && /does not match its digest/.test(e.message) && /deleted/.test(e.message));
      assert.equal(await dst.findModel(name), undefined);
      assert.equal(await dst.hasBlob(big.digest), false);
      const names = await readdir(dst.blobsDir);
      assert.deepEqual(names.filter((n) => n.includes(big.digest.slice(7))), [], "no partial or state left");
    }));

  it("a connection reset mid-part is retried from where the part stood", () =>
    withStore(async (dst) => {
      let resets = 0;
      proxy.reset();
      proxy.hooks.onBlobChunk = (c) => {
        if (resets === 0 && c.digest === big.digest && c.before > 200 * 1024) {
          resets++;
          return "reset";
        }
      };
      const r = await client.pull(dst, name, { insecure: true });
      assert.equal(resets, 1);
      assert.equal(r.digest, (await src.readModel(name)).digest);
      assert.ok(await dst.hasBlob(big.digest));
      // a part was asked again from an offset inside it, not from its start
      const ranges = proxy.log.filter((l) => l.startsWith("GET ") && l.includes(big.digest));
      assert.ok(ranges.length > Math.ceil(big.size / (512 * 1024)), ranges.join("\n"));
    }));

  it("503 and 429 (with Retry-After) are retried", () =>
    withStore(async (dst) => {
      let n = 0;
      proxy.hooks.respond = (req) => {
        if (!req.url?.includes("/manifests/") || n >= 3) return;
        n++;
        return n === 2
          ? { status: 429, headers: { "retry-after": "0" }, body: JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }) }
          : { status: 503, body: "" };
      };
      const r = await client.pull(dst, name, { insecure: true });
      assert.equal(n, 3);
      assert.ok(r.digest.startsWith("sha256:"));
    }));

  it("a pull gives up with the registry's error after too many failures", () =>
    withStore(async (dst) => {
      const quick = new RegistryClient({ retries: 2, baseDelayMs: 1 });
      try {
        proxy.hooks.respond = (req) => (req.url?.includes("/manifests/") ? { status: 503, body: "" } : undefined);
        await assert.rejects(quick.pull(dst, name, { insecure: true }), /answered 503/);
      } finally {
        await quick.close();
      }
    }));

  it("concurrent pulls of one model in one process share one download", () =>
    withStore(async (dst) => {
      proxy.reset();
      const [a, b] = await Promise.all([client.pull(dst, name, { insecure: true }), client.pull(dst, name, { insecure: true })]);
      assert.equal(a.digest, b.digest);
      assert.equal(proxy.served.get(big.digest), big.size, "the big blob was fetched once");
    }));

  it("concurrent pulls by separate clients (another process's view) never corrupt", () =>
    withStore(async (dst) => {
      const other = new RegistryClient({ partSize: 256 * 1024 });
      try {
        const [a, b] = await Promise.all([client.pull(dst, name, { insecure: true }), other.pull(dst, name, { insecure: true })]);
        assert.equal(a.digest, b.digest);
        const m = await dst.readModel(name);
        for (const d of [m.manifest.config, ...m.manifest.layers]) assert.equal(await dst.blobSize(d.digest), d.size);
        assert.equal((await dst.readBlob(m.manifest.config.digest)).length, m.manifest.config.size);
      } finally {
        await other.close();
      }
    }));

  it("a connection reset mid-PATCH is resumed at the registry's offset, in the same push", async () => {
    const target = `${new URL(proxy.base).host}/faults/reset:latest`;
    await src.copyModel(name, target);
    let resets = 0;
    proxy.reset();
    proxy.uploadDigest = big.digest;
    proxy.hooks.onUploadChunk = (c) => {
      if (resets === 0 && c.before > 1.2 * MiB) {
        resets++;
        return "reset";
      }
    };
    try {
      const r = await client.push(src, target, { insecure: true });
      assert.equal(resets, 1);
      assert.ok(r.uploaded >= 3, JSON.stringify(r));
      // after the reset the session was asked where it stood, and the push went on from there
      const uploads = proxy.log.filter((l) => l.includes("/v2/faults/reset/blobs/uploads/"));
      assert.ok(uploads.some((l) => l.startsWith("GET ")), uploads.join("\n"));
      const total = [(await src.readModel(target)).manifest.config, ...(await src.readModel(target)).manifest.layers].reduce((a, d) => a + d.size, 0);
      const sent = [...proxy.received.values()].reduce((a, b) => a + b, 0);
      assert.ok(sent < total + 512 * 1024, `resent at most the chunk that was cut (${sent} bytes for ${total})`);
      const m = await fetch(`${peer.base}/v2/faults/reset/blobs/${big.digest}`);
      assert.equal(m.status, 200);
      assert.equal((await m.arrayBuffer()).byteLength, big.size);
      assert.deepEqual(await new UploadSessions(src.root).list(), []);
    } finally {
      proxy.hooks = {};
      proxy.uploadDigest = undefined;
    }
  });

  it("an upload session the registry forgot restarts cleanly", async () => {
    const other = await newStore();
    try {
      const target = `${new URL(proxy.base).host}/faults/forgot:latest`;
      await src.copyModel(name, target);
      const sessions = new UploadSessions(src.root);
      const base = proxy.base;
      await sessions.set(base, "faults/forgot", big.digest, `${base}/v2/faults/forgot/blobs/uploads/does-not-exist`, 2 * MiB);
      const r = await client.push(src, target, { insecure: true });
      assert.ok(r.mounted + r.uploaded + r.skipped >= 3);
      assert.deepEqual(await sessions.list(), []);
      await client.pull(other, target, { insecure: true });
      assert.ok(await other.hasBlob(big.digest));
    } finally {
      await rm(other.root, { recursive: true, force: true });
    }
  });

  it("a saved session whose status answers 500 (a registry that lost its bytes) is started again, not fatal", async () => {
    const target = `${new URL(proxy.base).host}/faults/broken:latest`;
    await src.copyModel(name, target);
    const sessions = new UploadSessions(src.root);
    const location = `${proxy.base}/v2/faults/broken/blobs/uploads/broken-session`;
    await sessions.set(proxy.base, "faults/broken", big.digest, location, 2 * MiB);
    let asked = 0;
    proxy.hooks.respond = (req): CannedAnswer | void => {
      if (!req.url?.startsWith("/v2/faults/broken/blobs/uploads/broken-session")) return;
      asked++;
      return { status: 500, body: JSON.stringify({ errors: [{ code: "UNKNOWN", message: "upload broken-session lost its data" }] }) };
    };
    try {
      const r = await client.push(src, target, { insecure: true });
      assert.ok(asked >= 1, "the saved session was asked");
      assert.ok(r.uploaded >= 1, JSON.stringify(r));
      assert.deepEqual(await sessions.list(), []);
      const m = await fetch(`${peer.base}/v2/faults/broken/blobs/${big.digest}`);
      assert.equal((await m.arrayBuffer()).byteLength, big.size);
    } finally {
      proxy.hooks = {};
    }
  });

  it("a 401 Bearer challenge without an authenticate hook is a clear UNAUTHORIZED error", () =>
    withStore(async (dst) => {
      proxy.hooks.respond = (req) =>
        req.headers.authorization ? undefined : { status: 401, headers: { "www-authenticate": `Bearer realm="${proxy.base}/token",service="test",scope="repository:faults/model:pull"` }, body: "" };
      await assert.rejects(client.pull(dst, name, { insecure: true }), (e: Error & { code?: string }) => e.code === "UNAUTHORIZED" && /requires authentication/.test(e.message));
    }));

  it("a 401 Bearer challenge calls authenticate and the token is sent afterwards", () =>
    withStore(async (dst) => {
      const seen: Challenge[] = [];
      const authed = new RegistryClient({ authenticate: async (c) => (seen.push(c), "tok-123") });
      try {
        proxy.reset();
        proxy.hooks.respond = (req) =>
          req.headers.authorization === "Bearer tok-123" || req.url?.startsWith("/_mf/")
            ? undefined
            : { status: 401, headers: { "www-authenticate": `Bearer realm="${proxy.base}/token",service="test",scope="repository:faults/model:pull"` }, body: "" };
        await authed.pull(dst, name, { insecure: true });
        assert.equal(seen.length, 1);
        assert.equal(seen[0]!.realm, `${proxy.base}/token`);
        assert.equal(seen[0]!.scope, "repository:faults/model:pull");
      } finally {
        await authed.close();
      }
    }));

  it("a redirect to another host does not carry the Authorization header", () =>
    withStore(async (dst) => {
      const elsewhere = await startProxy(peer.base);
      const authed = new RegistryClient({ authenticate: async () => "tok-456" });
      try {
        proxy.hooks.respond = (req): CannedAnswer | undefined => {
          if (!req.headers.authorization) return { status: 401, headers: { "www-authenticate": `Bearer realm="${proxy.base}/token"` }, body: "" };
          const m = /^\/v2\/faults\/model\/blobs\/(sha256:[0-9a-f]+)$/.exec(req.url ?? "");
          if (req.method === "GET" && m) return { status: 307, headers: { location: `${elsewhere.base}${req.url}` } };
        };
        await authed.pull(dst, name, { insecure: true });
        const blobGets = elsewhere.log.filter((l) => l.startsWith("GET /v2/faults/model/blobs/"));
        assert.ok(blobGets.length >= 4, elsewhere.log.join("\n"));
        assert.ok(blobGets.every((l) => !l.endsWith(" auth")), "no Authorization went to the other host");
      } finally {
        await authed.close();
        await elsewhere.close();
      }
    }));
});
