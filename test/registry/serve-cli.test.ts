/**
 * `mf registry serve --tls-cert/--tls-key` and `mf registry gc` through the binary: HTTPS that the mf
 * client pulls from without `--insecure`, and a gc run on a served root that removes only old
 * unreferenced blobs.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, rm, utimes } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Agent, request } from "undici";
import { LocalStore } from "../../core/store.js";
import { RegistryClient } from "../../registry/client/index.js";
import { buildModel } from "./client/helpers.js";
import { pushBlob, pushImage, randomRepo } from "./oci-client.js";
import { spawnMfRegistry, tempDir, type SpawnedRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";

const dirs: string[] = [];
const registries: SpawnedRegistry[] = [];
after(async () => {
  for (const r of registries) {
    r.child.kill("SIGTERM");
    await r.exited;
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const mf = runMf;

async function serve(root: string, args: string[] = []): Promise<SpawnedRegistry> {
  const r = await spawnMfRegistry(root, args);
  registries.push(r);
  return r;
}

describe("mf registry serve and gc through the binary", () => {
  it("--tls-cert/--tls-key serve HTTPS; the mf client pulls from it without --insecure", async () => {
    const dir = await tempDir("mf-tls-");
    dirs.push(dir);
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const gen = spawnSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert,
    ]);
    assert.equal(gen.status, 0, gen.stderr.toString());
    const reg = await serve(join(dir, "root"), ["--tls-cert", cert, "--tls-key", key]);
    assert.match(reg.base, /^https:\/\/127\.0\.0\.1:\d+$/);

    const dispatcher = new Agent({ connect: { ca: await readFile(cert) } });
    try {
      const ping = await request(`${reg.base}/v2/`, { dispatcher });
      assert.equal(ping.statusCode, 200);
      assert.equal(ping.headers["docker-distribution-api-version"], "registry/2.0");
      await ping.body.dump();

      const host = new URL(reg.base).host;
      const name = `${host}/tls/model:v1`;
      const src = new LocalStore(join(dir, "src"));
      const built = await buildModel(src, dir, name);
      const client = new RegistryClient({ dispatcher });
      try {
        await client.push(src, name);
      } finally {
        await client.close();
      }
      // the blob redirect names the HTTPS URL the client came in by
      const m = await src.readModel(name);
      const blob = await request(`${reg.base}/v2/tls/model/blobs/${m.manifest.layers[0]!.digest}`, { dispatcher });
      assert.equal(blob.statusCode, 307);
      assert.match(String(blob.headers.location), new RegExp(`^https://${host.replace(/\./g, "\\.")}/_mf/blobs/`));
      await blob.body.dump();

      const pulled = await mf(["pull", name, "-q"], { MF_MODELS: join(dir, "dst"), MF_HOME: join(dir, "home"), NODE_EXTRA_CA_CERTS: cert });
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(pulled.stdout.trim(), built.digest);
    } finally {
      await dispatcher.close();
    }
  });

  it("mf registry gc removes old unreferenced blobs of a served root (dry run first), keeps the rest", async () => {
    const dir = await tempDir("mf-gc-cli-");
    dirs.push(dir);
    const root = join(dir, "root");
    const reg = await serve(root);
    const repo = randomRepo("gccli");
    const image = await pushImage(reg.base, repo, "keep");
    const orphan = await pushBlob(reg.base, repo, randomBytes(4096));
    const young = await pushBlob(reg.base, repo, randomBytes(2048));
    const blobFile = (d: string) => join(root, "blobs", "sha256", d.slice(7, 9), d.slice(7), "data");
    const manifest = JSON.parse(image.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const old = new Date(Date.now() - 3 * 3600_000);
    for (const d of [orphan, image.digest, manifest.config.digest, manifest.layers[0]!.digest]) await utimes(blobFile(d), old, old);

    const dry = await mf(["registry", "gc", "--root", root, "--grace", "1h", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^would remove ${orphan} \\(4096 bytes\\)$`, "m"));
    assert.equal((await fetch(`${reg.base}/v2/${repo}/blobs/${orphan}`, { method: "HEAD" })).status, 200, "a dry run removes nothing");

    const run = await mf(["registry", "gc", "--root", root, "--grace", "1h"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.split("\n").filter((l) => l.startsWith("removed ")), [`removed ${orphan} (4096 bytes)`]);
    assert.match(run.stdout, /1 blobs removed \(4096 bytes\), 1 unreferenced kept/);
    assert.equal((await fetch(`${reg.base}/v2/${repo}/blobs/${orphan}`, { method: "HEAD" })).status, 404);
    for (const d of [young, manifest.config.digest, manifest.layers[0]!.digest]) {
      assert.equal((await fetch(`${reg.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
    }
    const kept = await fetch(`${reg.base}/v2/${repo}/manifests/keep`, { headers: { accept: image.mediaType } });
    assert.deepEqual(Buffer.from(await kept.arrayBuffer()), image.bytes);
  });
});
