/**
 * API keys and the access file's life: skopeo with `--creds` and an API key pushes and pulls (basic auth at
 * the token endpoint), the mf client does the same with a stored key, and keys added or revoked in the
 * file take effect without a restart.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { addApiKey, revokeApiKey } from "../../../registry/server/access-edit.js";
import type { AccessPolicy } from "../../../registry/server/index.js";
import { buildModel, newStore, SKOPEO_MISSING } from "../client/helpers.js";
import { writeOciLayout, type LayoutImage } from "../oci-layout.js";
import { clientWith, keysDir, makeKey, startAuthRegistry, type AuthRegistry, type Keyed } from "./helpers.js";

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, out }));
  });
}

/** Waits until the registry has loaded a policy satisfying `ok` (the watcher or the poll sees the file). */
async function reloaded(reg: AuthRegistry, ok: (p: AccessPolicy) => boolean): Promise<void> {
  while (!ok(reg.access.current())) await new Promise((r) => setTimeout(r, 25));
}

async function tokenStatus(reg: AuthRegistry, user: string, secret: string): Promise<number> {
  const r = await request(`${reg.base}/token?scope=repository:ci/m:pull&service=mf-registry`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${secret}`).toString("base64")}` },
  });
  await r.body.dump();
  return r.statusCode;
}

describe("API keys and access-file reloads", () => {
  let dir: string;
  let admin: Keyed;
  let reg: AuthRegistry;
  let base: string;

  before(async () => {
    dir = await keysDir();
    admin = makeKey(dir, "admin");
    base = `# the organisation's registry\nkeys:\n  - key: ${admin.line}\n    access:\n      "**": [pull, push, delete]\n`;
    reg = await startAuthRegistry(base);
  });
  after(async () => {
    await reg?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("an API key added to the file works without a restart, and stops working once revoked", async () => {
    const { text, secret } = addApiKey(await readFile(reg.accessPath, "utf8"), "reloadtest", { "ci/*": ["pull"] });
    assert.match(text, /# the organisation's registry/, "comments survive the edit");
    assert.ok(!text.includes(secret), "only the hash is written");
    assert.equal(await tokenStatus(reg, "reloadtest", secret), 401);
    await reg.setAccess(text);
    await reloaded(reg, (p) => p.apiKeys.some((k) => k.id === "reloadtest"));
    assert.equal(await tokenStatus(reg, "reloadtest", secret), 200);
    assert.equal(await tokenStatus(reg, "reloadtest", `${secret}x`), 401);
    await reg.setAccess(revokeApiKey(text, "reloadtest"));
    await reloaded(reg, (p) => !p.apiKeys.some((k) => k.id === "reloadtest"));
    assert.equal(await tokenStatus(reg, "reloadtest", secret), 401);
  });

  it("a broken access file keeps the last good policy in force", async () => {
    const before = reg.access.current();
    await reg.setAccess("keys: [ this is not: valid");
    await reg.access.reload(true);
    assert.equal(reg.access.current(), before);
    await reg.setAccess(base);
    await reg.access.reload(true);
  });

  it("the mf client pushes and pulls with an API key (basic auth at the token endpoint)", async () => {
    const { text, secret } = addApiKey(await readFile(reg.accessPath, "utf8"), "mfci", { "ci/*": ["pull", "push"] });
    await reg.setAccess(text);
    await reloaded(reg, (p) => p.apiKeys.some((k) => k.id === "mfci"));
    const src = await newStore("mf-apikey-src-");
    const dst = await newStore("mf-apikey-dst-");
    const client = clientWith({ apiKey: secret });
    try {
      const name = `${reg.host}/ci/model:latest`;
      const built = await buildModel(src, dir, name);
      assert.equal((await client.push(src, name, { insecure: true })).digest, built.digest);
      assert.equal((await client.pull(dst, name, { insecure: true })).digest, built.digest);
      await buildModel(src, dir, `${reg.host}/other/model:latest`);
      await assert.rejects(client.push(src, `${reg.host}/other/model:latest`, { insecure: true }), (e: Error & { code?: string }) => e.code === "DENIED");
    } finally {
      await client.close();
      await rm(src.root, { recursive: true, force: true });
      await rm(dst.root, { recursive: true, force: true });
    }
  });

  describe("skopeo with --creds", { skip: SKOPEO_MISSING }, () => {
    let image: LayoutImage;
    let secret: string;
    before(async () => {
      image = await writeOciLayout(join(dir, "src"), "latest", 1024 * 1024);
      const added = addApiKey(await readFile(reg.accessPath, "utf8"), "skopeo", { "ci/*": ["pull", "push"] });
      secret = added.secret;
      await reg.setAccess(added.text);
      await reloaded(reg, (p) => p.apiKeys.some((k) => k.id === "skopeo"));
    });

    it("pushes and pulls an OCI image with an API key, and fails without one", async () => {
      const creds = `skopeo:${secret}`;
      const push = await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", creds, `oci:${join(dir, "src")}:latest`, `docker://${reg.host}/ci/tiny:latest`]);
      assert.equal(push.code, 0, push.out);
      const pull = await run("skopeo", ["--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", creds, `docker://${reg.host}/ci/tiny:latest`, `oci:${join(dir, "dst")}:latest`]);
      assert.equal(pull.code, 0, pull.out);
      const index = JSON.parse(await readFile(join(dir, "dst", "index.json"), "utf8")) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]!.digest, image.manifestDigest);
      const layer = (p: string) => readFile(join(dir, p, "blobs", "sha256", image.layerDigest.slice("sha256:".length)));
      assert.deepEqual(await layer("dst"), await layer("src"));

      const anon = await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", `oci:${join(dir, "src")}:latest`, `docker://${reg.host}/ci/anon:latest`]);
      assert.notEqual(anon.code, 0, "an anonymous push is refused");
      const wrong = await run("skopeo", ["--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", `skopeo:${secret}x`, `docker://${reg.host}/ci/tiny:latest`, `oci:${join(dir, "dst2")}:latest`]);
      assert.notEqual(wrong.code, 0, "a wrong API key is refused");
      const outside = await run("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", creds, `oci:${join(dir, "src")}:latest`, `docker://${reg.host}/team/x:latest`]);
      assert.notEqual(outside.code, 0, "the key's rules bound it to ci/*");
    });
  });
});
