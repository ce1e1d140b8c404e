/**
 * `mf registry serve --allow-foreign-layers REGEX` through the binary: a manifest whose non-distributable
 * layers were never pushed is accepted, listed and served; `mf registry gc` runs over it and keeps it and
 * its pushed blobs; an invalid expression stops the start with a clear message.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { pushBlob, randomRepo, sha256 } from "./oci-client.js";
import { Cleanup } from "./peers.js";
import { runMf } from "./run-mf.js";

const made = new Cleanup();
after(() => made.cleanup());

describe("mf registry serve --allow-foreign-layers, through the binary", () => {
  it("accepts, lists and serves a manifest with unpushed foreign layers; gc runs over it and keeps it", async () => {
    const root = join(await made.tempDir("mf-foreign-cli-"), "root");
    const reg = await made.serve(root, ["--allow-foreign-layers", "^https://layers\\.example\\.com/"]);
    const repo = randomRepo("foreign");
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "windows" }));
    const layer = randomBytes(500);
    const cd = await pushBlob(reg.base, repo, config);
    const ld = await pushBlob(reg.base, repo, layer);
    const mediaType = "application/vnd.oci.image.manifest.v1+json";
    const foreign = (url: string) => ({
      mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", digest: sha256(randomBytes(32)), size: 123_456_789, urls: [url],
    });
    const manifest = (url: string) => Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
      layers: [foreign(url), { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: ld, size: layer.length }],
    }));
    const bytes = manifest("https://layers.example.com/base.tar.gz");
    const put = await fetch(`${reg.base}/v2/${repo}/manifests/ltsc`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
    assert.equal(put.status, 201, await put.text());
    const refused = await fetch(`${reg.base}/v2/${repo}/manifests/other`, { method: "PUT", body: manifest("https://elsewhere.example/x"), headers: { "content-type": mediaType } });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /MANIFEST_BLOB_UNKNOWN.*not allowed by --allow-foreign-layers/);

    const served = async () => {
      const tags = await fetch(`${reg.base}/v2/${repo}/tags/list`);
      assert.deepEqual((await tags.json() as { tags: string[] }).tags, ["ltsc"]);
      for (const ref of ["ltsc", sha256(bytes)]) {
        const get = await fetch(`${reg.base}/v2/${repo}/manifests/${ref}`, { headers: { accept: mediaType } });
        assert.equal(get.status, 200, ref);
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes, ref);
      }
      for (const d of [cd, ld]) assert.equal((await fetch(`${reg.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
    };
    await served();
    const gc = await runMf(["registry", "gc", "--root", root, "--grace", "0s"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.doesNotMatch(gc.stdout, /^removed /m, "nothing of the image is removed");
    await served();
  });

  it("an invalid --allow-foreign-layers expression stops the start with a clear message", async () => {
    const dir = await made.tempDir("mf-foreign-bad-");
    const r = await runMf(["registry", "serve", "--root", join(dir, "root"), "--addr", "127.0.0.1:0", "--allow-foreign-layers", "https://(unclosed"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^mf: --allow-foreign-layers: "https:\/\/\(unclosed" is not a regular expression \(/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
