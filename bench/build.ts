/**
 * build: `mf build` of a Modelfile whose FROM is a ~2 GiB GGUF, against `openssl dgst -sha256`,
 * `sha256sum` and `cp` of the same file, and `mf build --link`, in the same run. Every figure is a
 * median of several runs with the min–max spread; the file is read once beforehand so every tool starts
 * from the same warm page cache.
 *
 *   npx tsx bench/build.ts [--reps 5] [--gib 2]
 */
import { mkdirSync, rmSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { cachedFixture, type LlamaGgufConfig } from "../fixtures/gguf/index.js";
import { CACHE, ROOT, fmtSeconds, report, stat, table, timeCommand } from "./lib.js";

const { values } = parseArgs({ options: { reps: { type: "string", default: "5" }, gib: { type: "string", default: "2" } } });
const reps = Number(values.reps);
const gib = Number(values.gib);

/** A llama config of about `gib` GiB in F16: 2048-wide layers, as many as it takes. */
function configFor(gibs: number): LlamaGgufConfig {
  const perLayer = 2 * (2 * 2048 * 2048 + 2 * 2048 * 512 + 3 * 2048 * 5632); // q,o + k,v (4 kv heads) + ffn, F16
  const blocks = Math.max(1, Math.round((gibs * 2 ** 30 - 2 * 2 * 32000 * 2048) / perLayer));
  return {
    seed: 7, name: "mf-bench-build", contextLength: 2048, embeddingLength: 2048, blockCount: blocks,
    feedForwardLength: 5632, headCount: 16, headCountKv: 4, vocabSize: 32000, matrixType: "F16",
  };
}

mkdirSync(CACHE, { recursive: true });
const t0 = Date.now();
const model = await cachedFixture(configFor(gib), CACHE);
const size = statSync(model).size;
process.stderr.write(`model ${model}: ${(size / 2 ** 30).toFixed(2)} GiB (ready in ${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);

const work = join(CACHE, "build-work");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const ctx = join(work, "ctx");
mkdirSync(ctx);
writeFileSync(join(ctx, "Modelfile"), `FROM ${model}\nPARAMETER temperature 0.5\n`);
const mfBin = join(ROOT, "dist", "cli", "main.js");
spawnSync("cat", [model], { stdio: ["ignore", "ignore", "inherit"] });

const runs: Record<string, number[]> = { openssl: [], sha256sum: [], cp: [], "mf build": [], "mf build --link": [] };
for (let i = 0; i < reps; i++) {
  runs.openssl!.push(timeCommand("openssl", ["dgst", "-sha256", model]));
  runs.sha256sum!.push(timeCommand("sha256sum", [model]));
  const dst = join(work, "copy.gguf");
  runs.cp!.push(timeCommand("cp", [model, dst]));
  rmSync(dst, { force: true });
  for (const [label, extra] of [["mf build", []], ["mf build --link", ["--link"]]] as const) {
    const store = join(work, "models");
    rmSync(store, { recursive: true, force: true });
    runs[label]!.push(timeCommand(process.execPath, [mfBin, "build", "-q", ...extra, "-t", "bench", ctx], { env: { ...process.env, MF_MODELS: store } }));
    rmSync(store, { recursive: true, force: true });
  }
  process.stderr.write(`rep ${i + 1}/${reps} done\n`);
}
rmSync(work, { recursive: true, force: true });

const s = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, stat(v)]));
const mbps = (x: number) => `${(size / 1e6 / x).toFixed(0)} MB/s`;
const slower = Math.max(s.openssl!.median, s.cp!.median);
const rows = Object.entries(s).map(([k, v]) => [k, fmtSeconds(v), mbps(v.median)]);
const md = [
  `## build: ${(size / 2 ** 30).toFixed(2)} GiB GGUF, ${reps} runs each (${new Date().toISOString()})`,
  "",
  table(["what", "time: median (min–max)", "throughput"], rows),
  "",
  `- mf build ÷ slower of (openssl, cp): **${(s["mf build"]!.median / slower).toFixed(2)}×** (goal ≤ 1.2×)`,
  `- mf build --link throughput ÷ openssl's: **${(s.openssl!.median / s["mf build --link"]!.median).toFixed(2)}×** (goal ≥ 0.75×)`,
  `- command: \`npx tsx bench/build.ts --reps ${reps} --gib ${gib}\``,
].join("\n");
report("build", md);
