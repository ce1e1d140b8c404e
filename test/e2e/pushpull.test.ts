/**
 * The `mf` binary end to end: build a model from a generated GGUF, `mf push` it to a live registry
 * (`mf registry serve` as a process, and Debian's docker-registry), `mf pull` it into a second store, and
 * `mf show` says the same on both; `mf push SRC DEST`; `mf save` / `mf load` between stores.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { mfCommand, REPO_ROOT, spawnMfRegistry, startDistribution, tempDir, type SpawnedRegistry } from "../registry/peers.js";
import { DISTRIBUTION_MISSING } from "../registry/client/helpers.js";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function mf(args: string[], models: string): Promise<Result> {
  return new Promise((res, rej) => {
    const env: Record<string, string | undefined> = { ...process.env, MF_MODELS: models, MF_HOME: join(models, ".home") };
    delete env.MF_DEBUG;
    const p = spawn(process.execPath, [...mfCommand(), ...args], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", rej);
    p.on("close", (code) => res({ code, stdout, stderr }));
  });
}

/** `mf show --json` output with the store's own path taken out (the rebuilt FROM line names the blob file). */
async function show(name: string, models: string): Promise<unknown> {
  const r = await ok(["show", name, "--json"], models);
  return JSON.parse(r.stdout.split(models).join("<store>")) as unknown;
}

async function ok(args: string[], models: string): Promise<Result> {
  const r = await mf(args, models);
  assert.equal(r.code, 0, `mf ${args.join(" ")}\n${r.stderr}`);
  return r;
}

for (const kind of ["mf", "distribution"] as const) {
  describe(`mf push / mf pull against ${kind}`, { skip: kind === "distribution" ? DISTRIBUTION_MISSING : undefined }, () => {
    let dir: string;
    let host: string;
    let close: () => Promise<void>;
    let a: string;
    let b: string;

    before(async () => {
      dir = await tempDir("mf-e2e-pushpull-");
      if (kind === "mf") {
        const r: SpawnedRegistry = await spawnMfRegistry(join(dir, "registry"));
        host = new URL(r.base).host;
        close = async () => {
          r.child.kill("SIGTERM");
          await r.exited;
        };
      } else {
        const d = (await startDistribution())!;
        host = new URL(d.base).host;
        close = d.close;
      }
      a = join(dir, "a");
      b = join(dir, "b");
      const ctx = join(dir, "ctx");
      await mkdir(ctx, { recursive: true });
      await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
      await writeFile(join(ctx, "Modelfile"), "FROM ./tiny.gguf\nSYSTEM You are pushed and pulled.\nPARAMETER temperature 0.3\nLICENSE MIT\n");
      await ok(["build", "-q", "-t", `${host}/e2e/tiny:v1`, ctx], a);
    });
    after(async () => {
      await close();
      await rm(dir, { recursive: true, force: true });
    });

    it("push, pull on a second store, and show gives the same on both", async () => {
      const name = `${host}/e2e/tiny:v1`;
      const pushed = await ok(["push", "--insecure", name], a);
      assert.match(pushed.stderr, /pushing [0-9a-f]{12}/);
      assert.match(pushed.stderr, /success/);
      const pulled = await ok(["pull", "--insecure", name], b);
      assert.match(pulled.stderr, /pulling manifest/);
      assert.match(pulled.stderr, /verifying sha256 digest/);
      assert.deepEqual(await show(name, b), await show(name, a));
      assert.match((await ok(["list"], b)).stdout, /e2e\/tiny:v1/);
    });

    it("mf push SRC DEST copies then pushes", async () => {
      const dest = `${host}/e2e/renamed:v2`;
      const r = await ok(["push", "--insecure", `${host}/e2e/tiny:v1`, dest], a);
      assert.match(r.stderr, /copied/);
      await ok(["pull", "--insecure", dest], b);
      const showA = JSON.parse((await ok(["show", dest, "--json"], a)).stdout) as { digest: string };
      const showB = JSON.parse((await ok(["show", dest, "--json"], b)).stdout) as { digest: string };
      assert.equal(showB.digest, showA.digest);
    });

    it("mf build FROM a registry name pulls the base into a store that lacks it", async () => {
      const c = join(dir, "c");
      const ctx = join(dir, "ctx-child");
      await mkdir(ctx, { recursive: true });
      await writeFile(join(ctx, "Modelfile"), `FROM ${host}/e2e/tiny:v1\nSYSTEM a child of the pushed model\n`);
      const r = await ok(["build", "--insecure", "-t", "local/child", ctx], c);
      assert.match(r.stderr, /pulling manifest/);
      const base = JSON.parse((await ok(["show", `${host}/e2e/tiny:v1`, "--json"], c)).stdout) as { digest: string };
      const pushed = JSON.parse((await ok(["show", `${host}/e2e/tiny:v1`, "--json"], a)).stdout) as { digest: string };
      assert.equal(base.digest, pushed.digest, "the base arrived whole");
      const child = JSON.parse((await ok(["show", "local/child", "--json"], c)).stdout) as { system: string };
      assert.equal(child.system, "a child of the pushed model");
    });

    it("pulling a name that is not there fails with a message and exit code 1", async () => {
      const r = await mf(["pull", "--insecure", `${host}/e2e/absent:v1`], b);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^mf: .*not found/m);
    });
  });
}

describe("mf save / mf load", () => {
  let dir: string;
  before(async () => {
    dir = await tempDir("mf-e2e-save-");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips models through an archive with the same digests", async () => {
    const a = join(dir, "a");
    const c = join(dir, "c");
    const ctx = join(dir, "ctx");
    await mkdir(ctx, { recursive: true });
    await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
    await writeFile(join(ctx, "Modelfile"), "FROM ./tiny.gguf\nSYSTEM saved\n");
    await ok(["build", "-q", "-t", "saved/one", "-t", "saved/two:x", ctx], a);
    const tar = join(dir, "models.tar");
    await ok(["save", "saved/one", "saved/two:x", "-o", tar], a);
    const loaded = await ok(["load", "-i", tar], c);
    assert.match(loaded.stdout, /loaded saved\/one:latest/);
    for (const n of ["saved/one", "saved/two:x"]) {
      assert.deepEqual(await show(n, c), await show(n, a));
    }
  });
});
