/**
 * Push then pull through the client against a live `mf` registry (in process) and Debian's
 * docker-registry: a model built from a generated GGUF arrives on a second store byte for byte, shows the
 * same, and a second push and pull move nothing.
 */
import { strict as assert } from "node:assert";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import type { ProgressEvent } from "../../../core/progress.js";
import { RegistryClient } from "../../../registry/client/index.js";
import { buildModel, DISTRIBUTION_MISSING, newStore, type Peer, showOf, startPeer } from "./helpers.js";
import { FsDriver } from "../../../registry/server/storage/fs.js";
import type { StorageDriver } from "../../../registry/server/storage/driver.js";
import { startInProcess, tempDir } from "../peers.js";
import { startProxy, type CountingProxy } from "./proxy.js";
import type { LocalStore } from "../../../core/store.js";
import { parseRef } from "../../../core/reference.js";

describe("a registry that asks for a minimum chunk size (OCI-Chunk-Min-Length)", () => {
  it("gets PATCHes of at least that size, whatever the client's chunk size", async () => {
    const fs = new FsDriver({ root: await tempDir("mf-minchunk-") });
    const storage: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, { minChunkBytes: 1024 * 1024 });
    const reg = await startInProcess({ storage }, fs.root);
    const proxy = await startProxy(reg.base);
    const src = await newStore();
    const client = new RegistryClient({ chunkSize: 256 * 1024 });
    try {
      const name = `${new URL(proxy.base).host}/team/minchunk:v1`;
      const built = await buildModel(src, src.root, name, { bigLayerBytes: 3 * 1024 * 1024 + 1000 });
      const r = await client.push(src, name, { insecure: true });
      assert.equal(r.digest, built.digest);
      const patches = proxy.log.filter((l) => l.startsWith("PATCH /v2/team/minchunk/blobs/uploads/"));
      // 3 MiB + 1000 bytes in 1 MiB chunks: four PATCHes, the last one short (256 KiB chunks would take 13)
      assert.equal(patches.length, 4, proxy.log.join("\n"));
    } finally {
      await client.close();
      await proxy.close();
      await reg.close();
      await rm(fs.root, { recursive: true, force: true });
      await rm(src.root, { recursive: true, force: true });
    }
  });
});

for (const kind of ["mf", "distribution"] as const) {
  describe(`push and pull against ${kind}`, { skip: kind === "distribution" ? DISTRIBUTION_MISSING : undefined }, () => {
    let peer: Peer;
    let proxy: CountingProxy;
    let src: LocalStore;
    let dst: LocalStore;
    const client = new RegistryClient({ partSize: 256 * 1024, chunkSize: 300 * 1024 });
    before(async () => {
      peer = await startPeer(kind);
      proxy = await startProxy(peer.base);
      src = await newStore();
      dst = await newStore();
    });
    after(async () => {
      await client.close();
      await proxy.close();
      await peer.close();
      await rm(src.root, { recursive: true, force: true });
      await rm(dst.root, { recursive: true, force: true });
    });

    it("pushes a built model and pulls it into another store with the same digest and show", async () => {
      const host = new URL(proxy.base).host;
      const name = `${host}/Team/Tiny:v1`;
      const built = await buildModel(src, src.root, name, { bigLayerBytes: 1024 * 1024 });
      const pushEvents: ProgressEvent[] = [];
      const pushed = await client.push(src, name, { insecure: true, onProgress: (e) => pushEvents.push(e) });
      assert.equal(pushed.digest, built.digest);
      assert.ok(pushed.uploaded >= 3, `uploaded ${pushed.uploaded}`);
      assert.equal(pushEvents.at(-1)!.status, "success");
      assert.ok(pushEvents.some((e) => /^pushing [0-9a-f]{12}$/.test(e.status) && e.completed === e.total && e.total! >= 1024 * 1024));
      // the wire name is lowercased
      assert.ok(proxy.log.some((l) => l.startsWith("PUT /v2/team/tiny/manifests/v1")), proxy.log.join("\n"));

      const events: ProgressEvent[] = [];
      const pulled = await client.pull(dst, name, { insecure: true, onProgress: (e) => events.push(e) });
      assert.equal(pulled.digest, built.digest);
      const statuses = events.map((e) => e.status);
      assert.equal(statuses[0], "pulling manifest");
      assert.deepEqual(statuses.slice(-3), ["verifying sha256 digest", "writing manifest", "success"]);
      const layerEvents = events.filter((e) => e.digest);
      assert.ok(layerEvents.every((e) => e.status === `pulling ${e.digest!.slice(7, 19)}` && typeof e.total === "number"));
      const a = await src.readModel(name);
      const b = await dst.readModel(name);
      assert.ok(a.bytes.equals(b.bytes), "manifest bytes are identical");
      assert.deepEqual(await showOf(dst, name), await showOf(src, name));
      for (const d of [a.manifest.config, ...a.manifest.layers]) assert.ok(await dst.hasBlob(d.digest));
    });

    it("moves no blob bytes when pushed and pulled again", async () => {
      const host = new URL(proxy.base).host;
      const name = `${host}/team/tiny:v1`;
      proxy.reset();
      const again = await client.push(src, name, { insecure: true });
      assert.equal(again.uploaded, 0);
      assert.ok(again.skipped >= 3);
      await client.pull(dst, name, { insecure: true });
      assert.equal([...proxy.served.values()].reduce((x, y) => x + y, 0), 0);
      assert.equal([...proxy.received.values()].reduce((x, y) => x + y, 0), 0);
    });

    it("mounts a layer inherited from another repository instead of uploading it", async () => {
      const host = new URL(proxy.base).host;
      const base = `${host}/team/tiny:v1`;
      const child = `${host}/other/child:latest`;
      const model = await src.readModel(base);
      // the child reuses the base's layers with `from`, as `FROM team/tiny` builds it
      const m = JSON.parse(model.bytes.toString()) as { layers: { from?: string }[] };
      for (const l of m.layers) l.from = "team/tiny";
      await src.writeManifest(parseRef(child), Buffer.from(JSON.stringify(m)));
      proxy.reset();
      const r = await client.push(src, child, { insecure: true });
      assert.ok(r.mounted >= 3, JSON.stringify(r));
      assert.ok(proxy.log.some((l) => /mount=sha256/.test(l) && /from=team%2Ftiny/.test(l)), proxy.log.join("\n"));
      // only the config (which carries no `from`) travels
      assert.equal(r.uploaded, 1);
      assert.equal([...proxy.received.values()].reduce((x, y) => x + y, 0), model.manifest.config.size);
    });

    it("pushes and pulls a plain OCI image manifest byte for byte", async () => {
      const host = new URL(proxy.base).host;
      const model = await src.readModel(`${host}/team/tiny:v1`);
      const oci = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: model.manifest.config.digest, size: model.manifest.config.size },
        layers: model.manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
        annotations: { "org.opencontainers.image.title": "plain" },
      }, null, 2));
      const name = `${host}/oci/plain:v1`;
      const written = await src.writeManifest(parseRef(name), oci);
      const pushed = await client.push(src, name, { insecure: true });
      assert.equal(pushed.digest, written.digest);
      const res = await fetch(`${peer.base}/v2/oci/plain/manifests/v1`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      assert.equal(res.headers.get("content-type"), "application/vnd.oci.image.manifest.v1+json");
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), oci, "the registry holds the exact bytes");
      const pulled = await client.pull(dst, name, { insecure: true });
      assert.equal(pulled.digest, written.digest);
      const b = await dst.readModel(name);
      assert.ok(b.bytes.equals(oci));
      assert.equal(b.manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
      assert.deepEqual(await showOf(dst, name), await showOf(src, name));
    });

    it("with chunkSize 0 every blob travels in one streamed request (no PATCH)", async () => {
      const host = new URL(proxy.base).host;
      const name = `${host}/team/streamed:v1`;
      await src.copyModel(`${host}/team/tiny:v1`, name);
      const streamed = new RegistryClient({ chunkSize: 0 });
      proxy.reset();
      try {
        const r = await streamed.push(src, name, { insecure: true });
        assert.ok(r.uploaded >= 3, JSON.stringify(r));
        const uploads = proxy.log.filter((l) => l.includes("/v2/team/streamed/blobs/uploads/"));
        assert.deepEqual(uploads.filter((l) => l.startsWith("PATCH ")), []);
        assert.equal(uploads.filter((l) => l.startsWith("PUT ") && /digest=sha256/.test(l)).length, r.uploaded);
        const m = await src.readModel(name);
        assert.equal([...proxy.received.values()].reduce((x, y) => x + y, 0), [m.manifest.config, ...m.manifest.layers].reduce((x, d) => x + d.size, 0));
      } finally {
        await streamed.close();
      }
      assert.equal((await client.pull(dst, name, { insecure: true })).digest, (await src.readModel(name)).digest);
    });

    it("refuses a name OCI cannot spell before any request", async () => {
      const host = new URL(proxy.base).host;
      proxy.reset();
      await assert.rejects(client.pull(dst, `${host}/_bad/name:latest`, { insecure: true }), (e: Error & { code?: string }) => e.code === "NAME_INVALID");
      assert.equal(proxy.log.length, 0);
    });

    it("says the model is unknown when the registry has no such manifest", async () => {
      const host = new URL(proxy.base).host;
      await assert.rejects(client.pull(dst, `${host}/team/nothing:here`, { insecure: true }), (e: Error & { code?: string }) => e.code === "MANIFEST_UNKNOWN" && /not found/.test(e.message));
    });
  });
}
