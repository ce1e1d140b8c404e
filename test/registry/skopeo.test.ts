/**
 * skopeo (a real OCI client) copies an image with a 64 MiB model layer into `mf registry serve` and back;
 * and the README's lines for skopeo and CI keys run as written (only the host changed) against a TLS
 * registry with an access file, with what the README says skopeo cannot do with an Ollama-format model.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { Agent } from "undici";
import { digestFile } from "../../core/digest.js";
import { LocalStore } from "../../core/store.js";
import { keyAuthenticator } from "../../registry/client/auth.js";
import { RegistryClient } from "../../registry/client/index.js";
import { makeKey } from "./auth/helpers.js";
import { buildModel } from "./client/helpers.js";
import { writeOciLayout, type LayoutImage } from "./oci-layout.js";
import { freePort, hasCommand, mfCommand, REPO_ROOT, selfSignedCert, spawnMfRegistry, startInProcess, tempDir, type InProcessRegistry, type SpawnedRegistry } from "./peers.js";

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd: opts.cwd, env: { ...process.env, ...opts.env } });
    let out = "";
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, out, stdout }));
  });
}

/** The README's shell lines for CI keys and skopeo, from the keys section's code block. */
async function readmeLines(): Promise<string[]> {
  const readme = await readFile(join(REPO_ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## An organisation's registry with keys"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
  const lines = block.split("\n").filter((l) => /^(skopeo |mf registry key add ci |mf login )/.test(l));
  return lines.map((l) => l.replace(/\s+# .*$/, ""));
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

describe("the README's skopeo and CI-key lines, as written", () => {
  if (!SKOPEO) {
    it("run against a TLS registry with keys", { skip: "skopeo is not installed (apt-get install skopeo): the real-client check could not run" }, () => {});
    return;
  }
  let dir: string;
  let reg: SpawnedRegistry | undefined;
  after(async () => {
    if (reg) {
      reg.child.kill("SIGTERM");
      await reg.exited;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("mf registry key add, mf login, skopeo list-tags and inspect --raw work; skopeo copy refuses a model, as the README says", async () => {
    dir = await tempDir("mf-skopeo-readme-");
    // HTTPS on 127.0.0.1 with a throwaway CA that skopeo (SSL_CERT_FILE) and mf (NODE_EXTRA_CA_CERTS) trust
    const { cert, key } = selfSignedCert(dir);
    const admin = makeKey(dir, "admin");
    const work = join(dir, "work");
    await mkdir(work);
    await writeFile(join(work, "access.yaml"), `keys:\n  - key: ${admin.line}\n    access:\n      "team-a/*": [pull, push]\n`);
    // --access needs the URL clients reach the registry at, as the README's line gives it
    const port = await freePort();
    reg = await spawnMfRegistry(join(dir, "root"), [
      "--access", join(work, "access.yaml"), "--tls-cert", cert, "--tls-key", key,
      "--addr", `127.0.0.1:${port}`, "--public-url", `https://127.0.0.1:${port}`,
    ]);
    const host = new URL(reg.base).host;

    // the model the README's lines name, pushed by the admin
    const name = `${host}/team-a/llama:v1`;
    const store = new LocalStore(join(dir, "models"));
    await buildModel(store, dir, name);
    const dispatcher = new Agent({ connect: { ca: await readFile(cert) } });
    const client = new RegistryClient({ dispatcher, authenticate: keyAuthenticator({ key: admin.key, dispatcher }), retries: 0 });
    try {
      await client.push(store, name);
    } finally {
      await client.close();
      await dispatcher.close();
    }
    const manifest = (await store.readModel(name)).bytes;

    // `mf` on PATH, as a user has it
    const bin = join(dir, "bin");
    await mkdir(bin);
    const entry = mfCommand().map((a) => (a === "tsx" ? `file://${join(REPO_ROOT, "node_modules", "tsx", "dist", "loader.mjs")}` : a.endsWith(".ts") || a.endsWith(".js") ? resolve(REPO_ROOT, a) : a));
    await writeFile(join(bin, "mf"), `#!/bin/sh\nexec "${process.execPath}" ${entry.map((a) => `"${a}"`).join(" ")} "$@"\n`);
    await chmod(join(bin, "mf"), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}`, MF_HOME: join(dir, "ci-home"), SSL_CERT_FILE: cert, NODE_EXTRA_CA_CERTS: cert, HOME: join(dir, "ci-home") };

    const lines = await readmeLines();
    assert.deepEqual(lines.map((l) => l.split(" ").slice(0, 2).join(" ")), ["mf registry", "mf login", "skopeo list-tags", "skopeo inspect"]);
    const outputs: string[] = [];
    for (const line of lines) {
      const cmd = line.replaceAll("registry.example:5000", host);
      const r = await run("sh", ["-c", cmd], { cwd: work, env });
      assert.equal(r.code, 0, `${cmd}\n${r.out}`);
      outputs.push(r.stdout);
      // the registry reloads the access file with the new key before the next line uses it
      if (line.startsWith("mf registry key add")) while (!/access file reloaded/.test(reg.output())) await new Promise((res) => setTimeout(res, 25));
    }
    assert.match(await readFile(join(work, "ci-key.txt"), "utf8"), /^mfk_[A-Za-z0-9_-]{43}\n$/);
    assert.deepEqual((JSON.parse(outputs[2]!) as { Tags: string[] }).Tags, ["v1"]);
    assert.deepEqual(Buffer.from(outputs[3]!), Buffer.from(manifest), "the manifest exactly as stored");

    // what the README says skopeo cannot do with a model
    const copy = await run("sh", ["-c", `skopeo copy --src-creds ci:"$(cat ci-key.txt)" docker://${host}/team-a/llama:v1 oci:./llama`], { cwd: work, env });
    assert.notEqual(copy.code, 0);
    assert.match(copy.out, /unsupported docker v2s2 media type: \\?"application\/vnd\.ollama\.image\.model/);
  });
});
