/** skopeo (a real OCI client) copies an image with a 64 MiB model layer into `mf registry serve` and back. */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { digestFile } from "../../core/digest.js";
import { writeOciLayout, type LayoutImage } from "./oci-layout.js";
import { hasCommand, startInProcess, tempDir, type InProcessRegistry } from "./peers.js";

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, out }));
  });
}

const SKOPEO = hasCommand("skopeo");

describe("skopeo round trip", () => {
  if (!SKOPEO) {
    it("copies an OCI layout in and out", { skip: "skopeo is not installed (apt-get install skopeo): the real-client check could not run" }, () => {});
    return;
  }
  let dir: string;
  let s: InProcessRegistry;
  let image: LayoutImage;
  before(async () => {
    dir = await tempDir("mf-skopeo-");
    image = await writeOciLayout(join(dir, "src"), "latest", 64 * 1024 * 1024);
    s = await startInProcess();
  });
  after(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("pushes a 64 MiB model layer and pulls it back byte for byte", async () => {
    const host = new URL(s.base).host;
    const push = await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", `oci:${join(dir, "src")}:latest`, `docker://${host}/models/tiny:latest`]);
    assert.equal(push.code, 0, push.out);
    const pull = await run("skopeo", ["--insecure-policy", "copy", "--src-tls-verify=false", `docker://${host}/models/tiny:latest`, `oci:${join(dir, "dst")}:latest`]);
    assert.equal(pull.code, 0, pull.out);
    const index = JSON.parse(await readFile(join(dir, "dst", "index.json"), "utf8")) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest, "the manifest travelled unchanged");
    const layer = join(dir, "dst", "blobs", "sha256", image.layerDigest.slice("sha256:".length));
    assert.equal(await digestFile(layer), image.layerDigest);
    const src = join(dir, "src", "blobs", "sha256", image.layerDigest.slice("sha256:".length));
    assert.deepEqual(await readFile(layer), await readFile(src));
  });
});
