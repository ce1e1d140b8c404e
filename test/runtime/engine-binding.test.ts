/**
 * Which native binding mf serve runs (runtime/engine/binding.ts): the engine `mf engine build` made, only
 * when it matches the installed node-llama-cpp and patch, this CPU and the GPU the prebuilt binary would
 * use; otherwise the prebuilt binary, with the reason. Built-engine directories here are written by hand
 * (no compiler runs in `npm test`); threadpool.test.ts runs the real build when CI has made one.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type EngineBuildInfo, chooseEngine, cpuIdentity, engineKey, nativePatchHash, wantedVariant } from "../../runtime/engine/binding.js";
import { filesLackingPatch } from "../../runtime/engine/binding-build.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import { MF_BIN, mf, ROOT } from "../helpers/mf.js";
import { withTmp } from "../helpers/tmp.js";
import { tinyGguf } from "./harness.js";

const KEY = { nodeLlamaCpp: "3.21.1", patch: "0123456789ab" };
const CPU = "Test CPU (aaaaaaaaaaaa)";

function writeBuild(dir: string, over: Partial<EngineBuildInfo> = {}): string {
  const info: EngineBuildInfo = {
    ...KEY,
    variant: "cpu",
    llamaCpp: { repo: "ggml-org/llama.cpp", release: "v0.4.0" },
    platform: platform(),
    arch: arch(),
    cpu: CPU,
    cmakeOptions: { GGML_NATIVE: "ON" },
    builtAt: "2026-12-02T00:00:00.000Z",
    ...over,
  };
  const variantDir = join(dir, `${info.nodeLlamaCpp}-${info.patch}`, info.variant);
  mkdirSync(variantDir, { recursive: true });
  writeFileSync(join(variantDir, "engine.json"), JSON.stringify(info));
  return variantDir;
}

test("the key is the installed node-llama-cpp's version and the hash of the committed patch's native part", () => {
  const key = engineKey();
  assert.ok(key, "patches/node-llama-cpp+<version>.patch is found");
  const pinned = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies["node-llama-cpp"];
  assert.equal(key.nodeLlamaCpp, pinned);
  assert.equal(key.patchFile, join(ROOT, "patches", `node-llama-cpp+${pinned}.patch`));
  assert.equal(key.patch, nativePatchHash(readFileSync(key.patchFile, "utf8")));
});

test("the key hashes the patch's native sections only: a change to node-llama-cpp's JavaScript keeps the engine built", () => {
  const section = (path: string, line: string) => `diff --git a/${path} b/${path}\nindex 1..2 100644\n--- a/${path}\n+++ b/${path}\n@@ -1,1 +1,2 @@\n one\n+${line}\n`;
  const native = section("node_modules/node-llama-cpp/llama/addon/AddonContext.cpp", "// pool");
  const js = section("node_modules/node-llama-cpp/dist/evaluator/LlamaContext/LlamaContext.js", "fix();");
  const sha = (t: string) => createHash("sha256").update(t).digest("hex").slice(0, 12);
  // a patch of native sections alone hashes as its whole file (the key engines were built under before)
  assert.equal(nativePatchHash(native), sha(native));
  assert.equal(nativePatchHash(js + native), sha(native));
  assert.equal(nativePatchHash(js.replace("fix();", "fix(2);") + native), nativePatchHash(js + native));
  assert.notEqual(nativePatchHash(js + native.replace("// pool", "// pools")), nativePatchHash(js + native));
  // the committed patch has both kinds, and its key is that of its native part
  const committed = readFileSync(engineKey()!.patchFile, "utf8");
  assert.match(committed, /^\+\+\+ b\/node_modules\/node-llama-cpp\/dist\//m);
  const nativeOnly = committed.split(/^(?=diff --git )/m).filter((s) => /^\+\+\+ b\/node_modules\/node-llama-cpp\/llama\//m.test(s)).join("");
  assert.equal(engineKey()!.patch, sha(nativeOnly));
});

test("node-llama-cpp in node_modules carries the committed patch (npm ci applies it); a file without it is named", async () => {
  const key = engineKey()!;
  const diff = readFileSync(key.patchFile, "utf8");
  assert.deepEqual(filesLackingPatch(ROOT, diff), []);
  await withTmp("engine-patch", async (dir) => {
    mkdirSync(join(dir, "pkg"));
    writeFileSync(join(dir, "pkg", "a.c"), "one\ntwo\nthree\n");
    const patch = "diff --git a/pkg/a.c b/pkg/a.c\n--- a/pkg/a.c\n+++ b/pkg/a.c\n@@ -1,3 +1,4 @@\n one\n+one and a half\n two\n three\n";
    assert.deepEqual(filesLackingPatch(dir, patch), ["pkg/a.c"]);
    writeFileSync(join(dir, "pkg", "a.c"), "one\none and a half\ntwo\nthree\n");
    assert.deepEqual(filesLackingPatch(dir, patch), []);
    assert.deepEqual(filesLackingPatch(dir, patch.replaceAll("pkg/a.c", "pkg/missing.c")), ["pkg/missing.c"]);
  });
});

test("a matching build is chosen; without one the prebuilt binary runs, and the reason names the way out", async () => {
  await withTmp("engine-choice", async (dir) => {
    const choose = (o: { variant?: "cpu" | "cuda"; cpu?: string } = {}) => chooseEngine({ dir, gpu: "auto", key: KEY, variant: o.variant ?? "cpu", cpu: o.cpu ?? CPU });

    const none = await choose();
    assert.equal(none.kind, "prebuilt");
    assert.match(none.description, new RegExp(`no engine built in ${dir}: \`mf engine build\``));

    // an unfinished build (no engine.json yet) is not an engine
    mkdirSync(join(dir, "3.21.1-0123456789ab", "cpu"), { recursive: true });
    writeFileSync(join(dir, "3.21.1-0123456789ab", "cpu", "llama-addon.node"), "half");
    assert.match((await choose()).description, /no engine built in/);

    // a build for another patch (or node-llama-cpp version) is stale
    writeBuild(dir, { patch: "ffffffffffff" });
    const stale = await choose();
    assert.equal(stale.kind, "prebuilt");
    assert.match(stale.description, /was built for 3\.21\.1-ffffffffffff, not 3\.21\.1-0123456789ab: run `mf engine build`/);

    const built = writeBuild(dir);
    const ok = await choose();
    assert.equal(ok.kind, "built");
    assert.equal(ok.dir, built);
    assert.match(ok.description, /built here by `mf engine build` \(cpu, llama\.cpp v0\.4\.0, persistent threadpool/);

    // the prebuilt binary would run on CUDA here: a CPU-only build must not take its place
    const noCuda = await choose({ variant: "cuda" });
    assert.equal(noCuda.kind, "prebuilt");
    assert.match(noCuda.description, /has no cuda variant: run `mf engine build` where the cuda toolkit is installed/);
    writeBuild(dir, { variant: "cuda" });
    assert.equal((await choose({ variant: "cuda" })).kind, "built");

    // GGML_NATIVE: a build from another CPU may use instructions this one lacks
    const other = await choose({ cpu: "Another CPU (bbbbbbbbbbbb)" });
    assert.equal(other.kind, "prebuilt");
    assert.match(other.description, /was built for another machine .*Test CPU/);

    // a directory that says it is something else is not trusted either
    writeBuild(dir, { variant: "vulkan", patch: "0123456789ab" });
    writeFileSync(join(dir, "3.21.1-0123456789ab", "vulkan", "engine.json"), JSON.stringify({ ...KEY, variant: "cpu", cpu: CPU, platform: platform(), arch: arch(), llamaCpp: { repo: "", release: "" } }));
    assert.equal((await chooseEngine({ dir, gpu: "auto", key: KEY, variant: "vulkan", cpu: CPU })).kind, "prebuilt");
  });
});

test("--no-gpu wants the CPU variant; this machine's own CPU identity is stable", async () => {
  assert.equal(await wantedVariant(false), "cpu");
  assert.equal(cpuIdentity(), cpuIdentity());
  assert.match(cpuIdentity(), /\([0-9a-f]{12}\)$/);
});

test("a built engine that does not load falls back to the prebuilt binary, with a warning, and still generates", async () => {
  await withTmp("engine-broken", async (dir) => {
    const variantDir = writeBuild(dir, { cpu: cpuIdentity() });
    writeFileSync(join(variantDir, "llama-addon.node"), "not an ELF file");
    const choice = await chooseEngine({ dir, gpu: false, key: KEY, cpu: cpuIdentity() });
    assert.equal(choice.kind, "built");
    const warnings: string[] = [];
    const engine = createLlamaEngine({ engine: choice, threads: 1, log: (level, m) => level === "warn" && warnings.push(m) });
    try {
      const m = await engine.load({ modelPath: await tinyGguf(), adapters: [], contextSize: 256, slots: 1, threads: 1 });
      const out: number[] = [];
      for await (const t of m.evaluate(m.tokenize("hello"), { sampling: { temperature: 0, topK: 1, topP: 1, minP: 0, seed: 1 } })) {
        out.push(t);
        if (out.length === 4) break;
      }
      assert.equal(out.length, 4);
      assert.ok(warnings.some((w) => w.includes(`the engine built in ${variantDir} did not load`) && w.includes("running node-llama-cpp's prebuilt binary")), warnings.join("\n"));
      await m.dispose();
    } finally {
      await engine.dispose();
    }
  });
});

test("mf engine status says which engine mf serve runs", async () => {
  await withTmp("engine-status", async (dir) => {
    const r = await mf(["engine", "status", "--no-gpu"], { env: { MF_ENGINE_DIR: dir } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `prebuilt: node-llama-cpp's prebuilt binary (no engine built in ${dir}: \`mf engine build\` builds one for this machine)\n`);
  });
});

test("mf engine build without a compiler says what to install, and exits 1", async () => {
  await withTmp("engine-tools", async (dir) => {
    const r = await mf(["engine", "build", "--no-gpu", "--dir", join(dir, "engine")], { env: { PATH: join(dir, "empty") } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, "mf: building the engine needs cmake, a C++ compiler, git (Debian: apt-get install cmake build-essential git)\n");
  });
});

test("mf serve says at start which engine it runs", async () => {
  await withTmp("engine-serve", async (dir) => {
    writeBuild(join(dir, "engine"), { patch: "ffffffffffff" });
    const child = spawn(process.execPath, [MF_BIN, "serve", "--no-gpu"], {
      cwd: ROOT,
      env: { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0", MF_ENGINE_DIR: join(dir, "engine") },
    });
    let out = "";
    try {
      await new Promise<void>((res, rej) => {
        child.stdout.on("data", (d) => {
          out += d;
          if (/listening on http:\/\/127\.0\.0\.1:\d+/.test(out)) res();
        });
        child.on("exit", (code) => rej(new Error(`mf serve exited ${code}: ${out}`)));
      });
    } finally {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    }
    const line = out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { engine?: string; msg: string }).find((l) => l.engine);
    assert.ok(line, out);
    assert.equal(line.engine, "prebuilt");
    assert.match(line.msg, new RegExp(`^engine: node-llama-cpp's prebuilt binary \\(the engine in ${join(dir, "engine")} was built for 3\\.21\\.1-ffffffffffff, not 3\\.21\\.1-[0-9a-f]{12}: run \`mf engine build\`\\)$`));
  });
});
