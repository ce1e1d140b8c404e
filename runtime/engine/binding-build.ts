/**
 * `mf engine build`: compiles node-llama-cpp's addon, with mf's patch (a persistent threadpool per
 * context), against the llama.cpp source node-llama-cpp ships (`llama/gitRelease.bundle`, plus its own
 * patches), offline, for this CPU (GGML_NATIVE) and for each GPU type node-llama-cpp finds usable here
 * whose toolkit is installed. The cmake options are node-llama-cpp's own for a local build, with OpenMP
 * off: ggml's threadpool is then the one that runs the threads, as the patch intends.
 *
 * The work tree (`<dir>/work`: the source copy and a cmake build tree per variant) is kept, so a rebuild
 * after a patch change compiles only what changed. Each variant is published atomically into
 * `<dir>/<node-llama-cpp version>-<hash of the patch's native sections>/<variant>/` with its `engine.json`
 * (see binding.ts).
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, availableParallelism, platform } from "node:os";
import { delimiter, dirname, join, relative } from "node:path";
import { getLlamaGpuTypes } from "node-llama-cpp";
import { RuntimeError } from "../../core/errors.js";
import { cpuIdentity, engineKey, type EngineBuildInfo, type EngineVariant, keyDirName, nodeLlamaCppDir, readBuildInfo } from "./binding.js";

export interface BuildEngineOptions {
  /** the engine directory (MF_ENGINE_DIR) */
  dir: string;
  /** also build for the GPU types node-llama-cpp finds usable here, when their toolkit is installed */
  gpu: boolean;
  /** parallel compile jobs (default: the CPUs this process may use) */
  jobs?: number;
  /** progress lines */
  log: (line: string) => void;
  /** where cmake's own output goes (default: inherited) */
  output?: "inherit" | "ignore";
  /** build even the variants already built for this key and CPU */
  force?: boolean;
}

export interface BuiltVariant {
  variant: EngineVariant;
  dir: string;
}

/** The files of node-llama-cpp's `llama/` folder that its CMakeLists.txt builds from. */
const ADDON_PROJECT = ["CMakeLists.txt", "package.json", "cmake", "addon", "profiles"];

function which(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? "").split(delimiter)) {
    const p = join(d, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function run(cmd: string, args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; output: "inherit" | "ignore" }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ["ignore", o.output, o.output] });
    child.on("error", reject);
    child.on("close", (code, signal) =>
      code === 0 ? resolve() : reject(new RuntimeError("INTERNAL", `${cmd} ${args.join(" ")} failed (${signal ?? `exit ${code}`})`)),
    );
  });
}

/** The toolkit a GPU variant needs, or why it is missing. */
function gpuToolkit(variant: EngineVariant): string | undefined {
  if (variant === "cuda") {
    const nvcc = process.env.CUDACXX || which("nvcc") || (existsSync("/usr/local/cuda/bin/nvcc") ? "/usr/local/cuda/bin/nvcc" : undefined);
    return nvcc ? undefined : "no CUDA toolkit (nvcc)";
  }
  if (variant === "vulkan") {
    const headers = process.env.VULKAN_SDK || existsSync("/usr/include/vulkan/vulkan.h");
    return which("glslc") && headers ? undefined : "no Vulkan SDK (glslc and the Vulkan headers)";
  }
  if (variant === "metal") return "mf does not build Metal";
  return undefined;
}

/** Copies `from` over `to` file by file, leaving unchanged files (and their mtimes) alone; removes extras. */
function syncTree(from: string, to: string): void {
  if (statSync(from).isDirectory()) {
    mkdirSync(to, { recursive: true });
    const names = new Set(readdirSync(from));
    for (const name of readdirSync(to)) if (!names.has(name)) rmSync(join(to, name), { recursive: true, force: true });
    for (const name of names) syncTree(join(from, name), join(to, name));
    return;
  }
  const data = readFileSync(from);
  if (existsSync(to) && readFileSync(to).equals(data)) return;
  writeFileSync(to, data);
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * The files of a unified diff (paths relative to `root`, `a/` and `b/` prefixes as git writes them) that
 * do not read as its result: some hunk's new side (context and added lines) is not in the file.
 */
export function filesLackingPatch(root: string, diff: string): string[] {
  const lacking: string[] = [];
  for (const section of diff.split(/^diff --git /m).slice(1)) {
    const target = /^\+\+\+ b\/(.*)$/m.exec(section)?.[1];
    if (!target) continue;
    let text: string;
    try {
      text = readFileSync(join(root, target), "utf8");
    } catch {
      lacking.push(target);
      continue;
    }
    const hunks = section.split(/^@@ [^\n]*@@[^\n]*\n/m).slice(1);
    const ok = hunks.every((h) => {
      const after = h.split("\n").filter((l) => l.startsWith(" ") || l.startsWith("+") || l === "").map((l) => l.slice(1));
      while (after.length && after.at(-1) === "") after.pop();
      return text.includes(after.join("\n"));
    });
    if (!ok) lacking.push(target);
  }
  return lacking;
}

/** Builds the engine; resolves with the variants published. */
export async function buildEngine(o: BuildEngineOptions): Promise<BuiltVariant[]> {
  const output = o.output ?? "inherit";
  const key = engineKey();
  if (!key) throw new RuntimeError("INTERNAL", "mf's patch to node-llama-cpp (patches/node-llama-cpp+<version>.patch) is missing from this installation");
  const nlc = nodeLlamaCppDir();
  const llamaDir = join(nlc, "llama");

  const variants: EngineVariant[] = ["cpu"];
  if (o.gpu) {
    for (const t of await getLlamaGpuTypes("supported")) {
      if (t === false) continue;
      const lacks = gpuToolkit(t);
      if (lacks) o.log(`${t} is usable here but ${lacks} is installed: mf serve keeps running the prebuilt binary on it`);
      else variants.push(t);
    }
  }

  const keyDir = join(o.dir, keyDirName(key));
  const upToDate = (v: EngineVariant) => {
    const b = readBuildInfo(join(keyDir, v));
    return b?.nodeLlamaCpp === key.nodeLlamaCpp && b.patch === key.patch && b.variant === v && b.cpu === cpuIdentity() && b.platform === platform() && b.arch === arch();
  };
  const built: BuiltVariant[] = [];
  const todo = variants.filter((v) => {
    if (o.force || !upToDate(v)) return true;
    o.log(`${v}: already built for this machine in ${join(keyDir, v)} (--force builds it again)`);
    built.push({ variant: v, dir: join(keyDir, v) });
    return false;
  });
  if (!todo.length) return built;

  const missing = [["cmake", which("cmake")], ["a C++ compiler", which("c++") ?? which("g++") ?? which("clang++")], ["git", which("git")]]
    .filter(([, found]) => !found)
    .map(([what]) => what);
  if (missing.length) throw new RuntimeError("INTERNAL", `building the engine needs ${missing.join(", ")} (Debian: apt-get install cmake build-essential git)`);

  // the addon in node_modules must carry the patch the key names (npm ci applies it through patch-package)
  const unpatched = filesLackingPatch(key.root, readFileSync(key.patchFile, "utf8"));
  if (unpatched.length) {
    throw new RuntimeError("INTERNAL", `${unpatched.join(", ")} does not carry ${relative(key.root, key.patchFile)}: run \`npx patch-package\` (npm ci runs it) and build again`);
  }

  const work = join(o.dir, "work");
  const src = join(work, "src");
  mkdirSync(src, { recursive: true });

  // llama.cpp: the release node-llama-cpp bundles, with the patches node-llama-cpp applies to it
  const info = JSON.parse(readFileSync(join(llamaDir, "llama.cpp.info.json"), "utf8")) as { tag: string; llamaCppGithubRepo: string };
  const patchesDir = join(llamaDir, "patches");
  const llamaPatches = existsSync(patchesDir) ? readdirSync(patchesDir).filter((f) => f.endsWith(".diff")).sort() : [];
  const bundle = join(llamaDir, "gitRelease.bundle");
  const stamp = sha256([info.tag, statSync(bundle).size, ...llamaPatches.map((p) => sha256(readFileSync(join(patchesDir, p))))].join("\n"));
  const cpp = join(src, "llama.cpp");
  const stampFile = join(work, "llama.cpp.stamp");
  if (!existsSync(stampFile) || readFileSync(stampFile, "utf8") !== stamp) {
    o.log(`llama.cpp ${info.tag}: cloning node-llama-cpp's bundle`);
    rmSync(cpp, { recursive: true, force: true });
    rmSync(stampFile, { force: true });
    await run("git", ["clone", "-q", bundle, cpp], { output });
    for (const p of llamaPatches) {
      const file = join(patchesDir, p);
      // a patch already in the release is skipped, as node-llama-cpp does
      if (spawnSync("git", ["apply", "--check", "-R", file], { cwd: cpp }).status === 0) continue;
      await run("git", ["apply", file], { cwd: cpp, output });
    }
    writeFileSync(stampFile, stamp);
  }
  for (const name of ADDON_PROJECT) if (existsSync(join(llamaDir, name))) syncTree(join(llamaDir, name), join(src, name));

  // what cmake-js would give the addon's CMakeLists.txt: Node-API headers, and node-addon-api for `require`
  const nlcRequire = createRequire(join(nlc, "package.json"));
  const cmakeJsRequire = createRequire(nlcRequire.resolve("cmake-js/package.json"));
  const napiInclude = (cmakeJsRequire("node-api-headers") as { include_dir: string }).include_dir;
  const addonApiModules = dirname(dirname(cmakeJsRequire.resolve("node-addon-api/package.json")));
  const env = { ...process.env, NODE_PATH: [addonApiModules, process.env.NODE_PATH].filter(Boolean).join(delimiter) };

  const variantSuffix = info.tag;
  const jobs = Math.max(1, Math.floor(o.jobs ?? availableParallelism()));
  for (const variant of todo) {
    const buildDir = join(work, `build-${variant}`);
    const outDir = join(work, `out-${variant}`);
    const cmakeOptions: Record<string, string> = {
      CMAKE_BUILD_TYPE: "Release",
      GGML_BUILD_NUMBER: "1",
      NLC_CURRENT_PLATFORM: `${platformName()}-${arch()}`,
      NLC_TARGET_PLATFORM: `${platformName()}-${arch()}`,
      NLC_VARIANT: variant === "cpu" ? variantSuffix : `${variant}.${variantSuffix}`,
      GGML_METAL: variant === "metal" ? "ON" : "OFF",
      GGML_CUDA: variant === "cuda" ? "ON" : "OFF",
      GGML_VULKAN: variant === "vulkan" ? "ON" : "OFF",
      GGML_CCACHE: "OFF",
      GGML_NATIVE: "ON",
      GGML_OPENMP: "OFF",
      LLAMA_CURL: "OFF",
      LLAMA_HTTPLIB: "OFF",
      LLAMA_BUILD_BORINGSSL: "OFF",
      LLAMA_OPENSSL: "OFF",
    };
    const defines = [
      ...Object.entries(cmakeOptions).map(([k, v]) => `-D${k}=${v}`),
      `-DCMAKE_JS_INC=${napiInclude}`,
      `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${outDir}`,
      `-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=${outDir}`,
    ];
    const generator = which("ninja") ? ["-G", "Ninja"] : [];
    o.log(`${variant}: configuring (${buildDir})`);
    try {
      await run("cmake", ["-S", src, "-B", buildDir, ...generator, ...defines], { env, output });
    } catch {
      // a build tree left by another generator or cmake: start it afresh once
      rmSync(buildDir, { recursive: true, force: true });
      await run("cmake", ["-S", src, "-B", buildDir, ...generator, ...defines], { env, output });
    }
    o.log(`${variant}: compiling with ${jobs} job${jobs === 1 ? "" : "s"} (about 12 minutes on 2 cores the first time)`);
    await run("cmake", ["--build", buildDir, "--target", "llama-addon", "--parallel", String(jobs)], { env, output });

    const dest = join(keyDir, variant);
    const tmp = join(keyDir, `.${variant}.${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    // the addon lands in outDir, llama.cpp's libraries where its CMakeLists.txt puts them (<build>/bin)
    const copied: string[] = [];
    for (const from of [outDir, join(buildDir, "bin")]) {
      if (!existsSync(from)) continue;
      for (const f of readdirSync(from).filter((f) => /\.(node|so(\.\d+)*|dylib|dll)$/.test(f))) {
        cpSync(join(from, f), join(tmp, f), { dereference: true });
        copied.push(f);
      }
    }
    if (!copied.includes("llama-addon.node")) throw new RuntimeError("INTERNAL", `the build left no llama-addon.node in ${outDir}`);
    const buildInfo: EngineBuildInfo = {
      nodeLlamaCpp: key.nodeLlamaCpp,
      patch: key.patch,
      variant,
      llamaCpp: { repo: info.llamaCppGithubRepo, release: info.tag },
      platform: platform(),
      arch: arch(),
      cpu: cpuIdentity(),
      cmakeOptions,
      builtAt: new Date().toISOString(),
    };
    writeFileSync(join(tmp, "engine.json"), JSON.stringify(buildInfo, null, 2) + "\n");
    rmSync(dest, { recursive: true, force: true });
    renameSync(tmp, dest);
    o.log(`${variant}: ${dest}`);
    built.push({ variant, dir: dest });
  }
  return built;
}

/** node-llama-cpp's platform names: linux, mac, win. */
function platformName(): string {
  const p = platform();
  return p === "darwin" ? "mac" : p === "win32" ? "win" : p;
}
