/**
 * `mf save` / `mf load` as library calls: an exact round trip (same manifest digests), blobs verified
 * while reading (a corrupt or truncated archive stores nothing), and skopeo's `oci-archive:` both ways:
 * skopeo copies mf's archive into the mf registry and the client pulls it back; an archive skopeo wrote
 * (no mf annotation) loads as it is.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import type { LocalStore } from "../../../core/store.js";
import { loadArchive, RegistryClient, saveModels } from "../../../registry/client/index.js";
import { snapshot } from "../../helpers/tmp.js";
import { tempDir } from "../peers.js";
import { buildModel, newStore, type Peer, showOf, SKOPEO_MISSING, startPeer } from "./helpers.js";

const run = promisify(execFile);

describe("save and load", () => {
  let src: LocalStore;
  let dir: string;
  let archive: string;
  const names = ["alpha:latest", "team/beta:v2"];

  before(async () => {
    src = await newStore();
    dir = await tempDir("mf-archive-");
    await buildModel(src, dir, names[0]!, { bigLayerBytes: 600 * 1024 });
    await buildModel(src, dir, names[1]!, { seed: 7 });
    archive = join(dir, "models.tar");
    const out = createWriteStream(archive);
    await saveModels(src, names, out);
    out.end();
    await finished(out);
  });
  after(async () => {
    await rm(src.root, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips exactly: same names, same manifest digests, same show", async () => {
    const dst = await newStore();
    try {
      const r = await loadArchive(dst, createReadStream(archive));
      assert.equal(r.models.length, 2);
      for (const n of names) {
        const a = await src.readModel(n);
        const b = await dst.readModel(n);
        assert.equal(b.digest, a.digest);
        assert.ok(a.bytes.equals(b.bytes));
        assert.deepEqual(await showOf(dst, n), await showOf(src, n));
      }
      // the manifests that travelled as blobs are not left behind as unreferenced blobs
      const referenced = await dst.referencedBlobs();
      const blobs = (await snapshot(dst.blobsDir)).map((l) => l.split(" ")[0]!.slice(1));
      assert.equal(blobs.length, referenced.size);
    } finally {
      await rm(dst.root, { recursive: true, force: true });
    }
  });

  it("writes an OCI layout: oci-layout, an annotated index.json of OCI manifests, blobs/sha256", async () => {
    const listing = await run("tar", ["-tf", archive]);
    const files = listing.stdout.trim().split("\n");
    assert.equal(files[0], "oci-layout");
    assert.equal(files[1], "index.json");
    assert.ok(files.slice(2).every((f) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(f)));
    const x = await run("tar", ["-xOf", archive, "index.json"]);
    const index = JSON.parse(x.stdout) as { manifests: { mediaType: string; annotations: Record<string, string> }[] };
    assert.deepEqual(index.manifests.map((m) => m.annotations["org.opencontainers.image.ref.name"]), [
      "registry.ollama.ai/library/alpha:latest",
      "registry.ollama.ai/team/beta:v2",
    ]);
    assert.ok(index.manifests.every((m) => m.mediaType === "application/vnd.oci.image.manifest.v1+json"));
    assert.equal(index.manifests[0]!.annotations["io.mf.original-manifest"], (await src.readModel(names[0]!)).digest);
  });

  it("a corrupt archive stores nothing", async () => {
    const dst = await newStore();
    try {
      const bytes = await readFile(archive);
      // flip one byte inside the largest blob's body (past the headers at the start)
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      const bad = join(dir, "bad.tar");
      await writeFile(bad, bytes);
      await assert.rejects(loadArchive(dst, createReadStream(bad)), /does not match its digest/);
      assert.deepEqual(await snapshot(dst.root), []);
    } finally {
      await rm(dst.root, { recursive: true, force: true });
    }
  });

  it("a truncated archive stores nothing", async () => {
    const dst = await newStore();
    try {
      const bytes = await readFile(archive);
      const cut = join(dir, "cut.tar");
      await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.8)));
      await assert.rejects(loadArchive(dst, createReadStream(cut)));
      assert.deepEqual(await snapshot(dst.root), []);
    } finally {
      await rm(dst.root, { recursive: true, force: true });
    }
  });

  describe("with skopeo", { skip: SKOPEO_MISSING }, () => {
    let peer: Peer;
    const client = new RegistryClient();
    before(async () => {
      peer = await startPeer("mf");
    });
    after(async () => {
      await client.close();
      await peer.close();
    });

    it("skopeo copies mf's archive into the mf registry and the client pulls it back", async () => {
      const dst = await newStore();
      try {
        await run("skopeo", ["copy", "--dest-tls-verify=false", `oci-archive:${archive}:registry.ollama.ai/library/alpha:latest`, `docker://${peer.host}/skopeo/alpha:latest`]);
        const name = `${peer.host}/skopeo/alpha:latest`;
        await client.pull(dst, name, { insecure: true });
        const a = await showOf(src, names[0]!) as { digest: string };
        const b = await showOf(dst, name) as { digest: string };
        assert.deepEqual({ ...b, digest: "" }, { ...a, digest: "" });
        const m = await dst.readModel(name);
        assert.equal(m.manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
      } finally {
        await rm(dst.root, { recursive: true, force: true });
      }
    });

    it("an archive skopeo wrote (no mf annotation) loads as it is", async () => {
      const dst = await newStore();
      const out = join(dir, "from-skopeo.tar");
      try {
        await run("skopeo", ["copy", "--src-tls-verify=false", `docker://${peer.host}/skopeo/alpha:latest`, `oci-archive:${out}:example.com/imported/alpha:v1`]);
        const r = await loadArchive(dst, createReadStream(out));
        assert.equal(r.models.length, 1);
        const m = await dst.readModel("example.com/imported/alpha:v1");
        assert.equal(m.manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
        assert.equal(m.manifest.layers.length, (await src.readModel(names[0]!)).manifest.layers.length);
      } finally {
        await rm(dst.root, { recursive: true, force: true });
      }
    });
  });
});
