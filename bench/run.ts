/**
 * `npm run bench [-- <section> [flags]]`: runs every benchmark (or the one named) end to end, each in its
 * own process, each printing its tables and putting its section into bench/results/<date>.md.
 *
 *   templates  template render (50-message chat) and 1 MB Modelfile parse, sanity figures
 *   inference  mf serve vs node-llama-cpp direct vs llama-server / llama-bench
 *   threadpool node-llama-cpp direct on the built engine: no pool vs the persistent pool (poll 0, 50), idle and
 *              beside a CPU-bound competitor
 *   build      mf build (and --link) vs openssl dgst, sha256sum, cp of a ~2 GiB GGUF
 *   transfer   2 GiB push/pull: mf client and skopeo against mf registry and distribution, registry RSS
 *   s3         2 GiB push/pull through mf registry on S3 (Ceph), one replica and two behind a balancer,
 *              beside the filesystem registry (uses MF_TEST_S3_* or starts test/services/ceph.sh)
 *
 * Needs the built binary (dist/, built here first), and for transfer Debian's `skopeo` and
 * `docker-registry` (installed with apt-get when missing); inference builds llama.cpp's llama-server and
 * llama-bench once (bench/build-llama-cpp.sh, cached in ~/.cache/mf-bench/).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, resultsFile } from "./lib.js";

const SECTIONS: Record<string, { scripts: string[]; needsDist: boolean; apt?: Record<string, string> }> = {
  templates: { scripts: ["templates.ts"], needsDist: false },
  inference: { scripts: ["inference.ts"], needsDist: true },
  threadpool: { scripts: ["threadpool.ts"], needsDist: true },
  build: { scripts: ["build.ts"], needsDist: true },
  transfer: { scripts: ["transfer.ts"], needsDist: true, apt: { skopeo: "skopeo", "docker-registry": "docker-registry" } },
  s3: { scripts: ["transfer-s3.ts"], needsDist: true, apt: { radosgw: "radosgw", "ceph-mon": "ceph-mon", "ceph-osd": "ceph-osd", ceph: "ceph-common" } },
};

const argv = process.argv.slice(2);
const named = argv.filter((a) => a in SECTIONS);
const flags = argv.filter((a) => !(a in SECTIONS));
const unknown = flags.find((a) => !a.startsWith("-") && !/^[\d.,]+$/.test(a));
if (unknown) {
  process.stderr.write(`bench: unknown section "${unknown}"; sections: ${Object.keys(SECTIONS).join(", ")}\n`);
  process.exit(2);
}
const chosen = named.length ? named : Object.keys(SECTIONS);

function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): number {
  return spawnSync(cmd, args, { cwd: ROOT, stdio: "inherit", env: opts.env ?? process.env }).status ?? 1;
}

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function ensureApt(pkgs: Record<string, string>): void {
  const missing = Object.entries(pkgs).filter(([cmd]) => !has(cmd) && !existsSync(`/usr/bin/${cmd}`)).map(([, pkg]) => pkg);
  if (!missing.length) return;
  process.stderr.write(`bench: installing ${missing.join(", ")} with apt-get\n`);
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const run = (args: string[]) => (sudo.length ? sh("sudo", args) : sh(args[0]!, args.slice(1)));
  if (run(["apt-get", "update"]) !== 0 || run(["apt-get", "install", "-y", "--no-install-recommends", ...missing]) !== 0) {
    throw new Error(`could not install ${missing.join(", ")}; install them with apt-get and run again`);
  }
}

if (chosen.some((s) => SECTIONS[s]!.needsDist)) {
  process.stderr.write("bench: building dist/ (npm run build)\n");
  if (sh("npm", ["run", "build", "--silent"]) !== 0) {
    if (!existsSync(join(ROOT, "dist", "cli", "main.js"))) throw new Error("npm run build failed and there is no dist/cli/main.js");
    process.stderr.write("bench: npm run build reported errors; going on with the dist/ it wrote\n");
  }
}

const failed: string[] = [];
for (const name of chosen) {
  const s = SECTIONS[name]!;
  process.stderr.write(`\n=== bench: ${name} ===\n`);
  try {
    if (s.apt) ensureApt(s.apt);
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    failed.push(name);
    continue;
  }
  for (const script of s.scripts) {
    const status = sh(process.execPath, ["--import", "tsx", join("bench", script), ...flags], {
      env: { ...process.env, MF_BENCH_CLI: process.env.MF_BENCH_CLI ?? "dist/cli/main.js", MF_TEST_CLI: process.env.MF_TEST_CLI ?? "dist/cli/main.js" },
    });
    if (status !== 0) failed.push(`${name} (${script})`);
  }
}

const file = resultsFile();
if (existsSync(file) && !named.length) process.stdout.write(`\n\n${readFileSync(file, "utf8")}`);
process.stdout.write(`\nbench: results in ${file}${failed.length ? `; FAILED: ${failed.join(", ")}` : ""}\n`);
process.exit(failed.length ? 1 : 0);
