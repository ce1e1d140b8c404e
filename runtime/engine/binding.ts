/**
 * Which native binding the engine runs: node-llama-cpp's prebuilt binary from npm, or the one
 * `mf engine build` compiled on this machine from node-llama-cpp's bundled llama.cpp with mf's patch to
 * its addon (`patches/node-llama-cpp+<version>.patch`: a persistent, polling ggml threadpool per context;
 * the same file also fixes node-llama-cpp's JavaScript, which is no part of the build or its key).
 *
 * A build lives outside node_modules, under the engine directory (MF_ENGINE_DIR, default ~/.mf/engine):
 * `<node-llama-cpp version>-<patch hash>/<variant>/` holds `llama-addon.node`, its libraries and
 * `engine.json` (written last, so a directory without it is an unfinished build). The variant is `cpu` or
 * the GPU type it was built for. A build is used only when its key matches the installed node-llama-cpp
 * and patch, it was built for this CPU, and it has the variant the prebuilt binary would have used:
 * with `gpu: "auto"`, the best GPU type node-llama-cpp finds here. Anything else runs the prebuilt binary,
 * and the choice says why.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, cpus, platform } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { getLlama, getLlamaGpuTypes, type Llama, LlamaLogLevel, type LlamaOptions } from "node-llama-cpp";

/** `cpu`, or the GPU type a variant was built for (node-llama-cpp's names). */
export type EngineVariant = "cpu" | "cuda" | "vulkan" | "metal";

/** `engine.json` of a built variant. */
export interface EngineBuildInfo {
  nodeLlamaCpp: string;
  /** `nativePatchHash` of the patch: first 12 hex digits of the SHA-256 of its native sections */
  patch: string;
  variant: EngineVariant;
  llamaCpp: { repo: string; release: string };
  platform: string;
  arch: string;
  /** `cpuIdentity()` of the machine it was built on (GGML_NATIVE: it uses that CPU's instructions) */
  cpu: string;
  cmakeOptions: Record<string, string>;
  builtAt: string;
}

export interface EngineChoice {
  kind: "built" | "prebuilt";
  /** the variant's directory, for "built" */
  dir?: string;
  info?: EngineBuildInfo;
  /** one line for the log: what runs, and for the prebuilt binary why no build is used */
  description: string;
}

export interface EngineKey {
  nodeLlamaCpp: string;
  patch: string;
  /** the patch file the hash was taken of */
  patchFile: string;
  /** mf's package root (where package.json and patches/ are) */
  root: string;
}

const here = dirname(fileURLToPath(import.meta.url));

/** node-llama-cpp's package directory. */
export function nodeLlamaCppDir(): string {
  return dirname(dirname(fileURLToPath(import.meta.resolve("node-llama-cpp"))));
}

/** mf's package root: the nearest directory above this file whose package.json is mf's. */
export function mfRoot(): string | undefined {
  for (let d = here; ; d = dirname(d)) {
    try {
      if ((JSON.parse(readFileSync(join(d, "package.json"), "utf8")) as { name?: string }).name === "mf") return d;
    } catch {
      // keep going up
    }
    if (dirname(d) === d) return undefined;
  }
}

/** Where node-llama-cpp keeps the sources its addon is compiled from (its own addon and llama.cpp). */
const NATIVE_SOURCES = "node_modules/node-llama-cpp/llama/";

/**
 * The hash a build is keyed on: the first 12 hex digits of the SHA-256 of the patch's sections (one per
 * file, `diff --git` to the next, in their order) that change files under node-llama-cpp's `llama/`, the
 * sources the addon is compiled from. A change to node-llama-cpp's JavaScript (`dist/`) is not in the
 * binary, so it keeps the key, and the engine already built stays in use. A patch of native sections
 * only hashes as the whole file does.
 */
export function nativePatchHash(patch: string): string {
  const sections = patch.split(/^(?=diff --git )/m).filter((s) => s.startsWith("diff --git "));
  const native = sections.filter((s) => /^\+\+\+ b\/(.*)$/m.exec(s)?.[1]?.startsWith(NATIVE_SOURCES));
  return createHash("sha256").update(native.join("")).digest("hex").slice(0, 12);
}

/** The key a build must carry: the installed node-llama-cpp's version and the hash of mf's patch to its native sources. */
export function engineKey(): EngineKey | undefined {
  const root = mfRoot();
  if (!root) return undefined;
  const version = (JSON.parse(readFileSync(join(nodeLlamaCppDir(), "package.json"), "utf8")) as { version: string }).version;
  const patchFile = join(root, "patches", `node-llama-cpp+${version}.patch`);
  if (!existsSync(patchFile)) return undefined;
  return { nodeLlamaCpp: version, patch: nativePatchHash(readFileSync(patchFile, "utf8")), patchFile, root };
}

export function keyDirName(key: Pick<EngineKey, "nodeLlamaCpp" | "patch">): string {
  return `${key.nodeLlamaCpp}-${key.patch}`;
}

/** What identifies this CPU for a build with GGML_NATIVE: its model name and instruction-set flags. */
export function cpuIdentity(): string {
  let flags = "";
  try {
    flags = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "";
  } catch {
    // not Linux: the model name alone
  }
  const model = cpus()[0]?.model.trim() ?? "unknown";
  return `${model} (${createHash("sha256").update(flags).digest("hex").slice(0, 12)})`;
}

export function readBuildInfo(dir: string): EngineBuildInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "engine.json"), "utf8")) as EngineBuildInfo;
  } catch {
    return undefined;
  }
}

/** The variant node-llama-cpp's prebuilt binary would run with this `gpu` option on this machine. */
export async function wantedVariant(gpu: false | "auto"): Promise<EngineVariant> {
  if (gpu === false) return "cpu";
  const best = (await getLlamaGpuTypes("supported"))[0];
  return best === undefined || best === false ? "cpu" : best;
}

export interface ChooseEngineOptions {
  /** the engine directory (MF_ENGINE_DIR) */
  dir: string;
  gpu: false | "auto";
  /** overrides for tests: the key, the variant wanted, this CPU */
  key?: Pick<EngineKey, "nodeLlamaCpp" | "patch"> | null;
  variant?: EngineVariant;
  cpu?: string;
}

/** Picks the built engine when it exists and matches, else the prebuilt binary (and says why). */
export async function chooseEngine(o: ChooseEngineOptions): Promise<EngineChoice> {
  const key = o.key === undefined ? engineKey() : (o.key ?? undefined);
  const prebuilt = (why: string): EngineChoice => ({ kind: "prebuilt", description: `node-llama-cpp's prebuilt binary (${why})` });
  if (!key) return prebuilt("mf's patch to node-llama-cpp is not installed, so no build can match");
  const variant = o.variant ?? (await wantedVariant(o.gpu));
  const keyDir = join(o.dir, keyDirName(key));
  const dir = join(keyDir, variant);
  const info = readBuildInfo(dir);
  if (!info) {
    if (existsSync(join(keyDir)) && readdirSync(keyDir).some((v) => readBuildInfo(join(keyDir, v)))) {
      return prebuilt(`the engine built in ${keyDir} has no ${variant} variant: run \`mf engine build\` where the ${variant} toolkit is installed`);
    }
    const stale = existsSync(o.dir) ? readdirSync(o.dir).filter((d) => d !== keyDirName(key) && /^\d+\.\d+\.\d+.*-[0-9a-f]{12}$/.test(d)) : [];
    if (stale.length) return prebuilt(`the engine in ${o.dir} was built for ${stale.join(", ")}, not ${keyDirName(key)}: run \`mf engine build\``);
    return prebuilt(`no engine built in ${o.dir}: \`mf engine build\` builds one for this machine`);
  }
  if (info.nodeLlamaCpp !== key.nodeLlamaCpp || info.patch !== key.patch || info.variant !== variant) {
    return prebuilt(`the engine in ${dir} says it was built for ${info.nodeLlamaCpp}-${info.patch} ${info.variant}: run \`mf engine build\``);
  }
  if (info.platform !== platform() || info.arch !== arch() || info.cpu !== (o.cpu ?? cpuIdentity())) {
    return prebuilt(`the engine in ${dir} was built for another machine (${info.platform}-${info.arch}, ${info.cpu}): run \`mf engine build\``);
  }
  return {
    kind: "built",
    dir,
    info,
    description: `built here by \`mf engine build\` (${variant}, llama.cpp ${info.llamaCpp.release}, persistent threadpool; ${dir})`,
  };
}

/** getLlama's options that the built engine honours too. */
export type BindingOptions = Pick<LlamaOptions, "logLevel" | "logger" | "maxThreads"> & { gpu: false | "auto" };

interface LlamaInternals {
  Llama: { _create(o: Record<string, unknown>): Promise<Llama> };
}
interface GetLlamaInternals {
  defaultLlamaVramPadding: (total: number) => number;
  defaultLlamaRamPadding: (total: number) => number;
}

/**
 * A Llama over the chosen binding. The built one is loaded as node-llama-cpp loads its own local builds
 * (`Llama._create` over the required addon; node-llama-cpp 3.21.1 has no option for a build outside its
 * package), with getLlama's defaults.
 */
export async function loadBinding(choice: EngineChoice, o: BindingOptions): Promise<Llama> {
  const prebuilt = () => getLlama({ gpu: o.gpu, build: "never", logLevel: o.logLevel, logger: o.logger, maxThreads: o.maxThreads });
  if (choice.kind === "prebuilt" || !choice.dir || !choice.info) return prebuilt();
  try {
    return await loadBuilt(choice.dir, choice.info, o);
  } catch (e) {
    o.logger?.(LlamaLogLevel.warn, `the engine built in ${choice.dir} did not load (${e instanceof Error ? e.message : String(e)}): running node-llama-cpp's prebuilt binary`);
    return prebuilt();
  }
}

async function loadBuilt(dir: string, info: EngineBuildInfo, o: BindingOptions): Promise<Llama> {
  const dist = dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
  const { Llama } = (await import(pathToFileURL(join(dist, "bindings", "Llama.js")).href)) as LlamaInternals;
  const pads = (await import(pathToFileURL(join(dist, "bindings", "getLlama.js")).href)) as GetLlamaInternals;
  const bindingPath = join(dir, "llama-addon.node");
  const require = createRequire(import.meta.url);
  // each Llama gets its own instance of the addon, as getLlama does (a logger per instance)
  delete require.cache[bindingPath];
  const bindings: unknown = require(bindingPath);
  delete require.cache[bindingPath];
  return Llama._create({
    bindings,
    bindingPath,
    buildType: "localBuild",
    buildMetadata: {
      buildOptions: {
        customCmakeOptions: info.cmakeOptions,
        llamaCpp: info.llamaCpp,
        gpu: info.variant === "cpu" ? false : info.variant,
        platform: info.platform,
        arch: info.arch,
      },
    },
    logLevel: o.logLevel,
    logger: o.logger,
    maxThreads: o.maxThreads,
    vramPadding: pads.defaultLlamaVramPadding,
    ramPadding: pads.defaultLlamaRamPadding,
    debug: false,
    numa: false,
    tempDir: false,
    skipLlamaInit: false,
  });
}
