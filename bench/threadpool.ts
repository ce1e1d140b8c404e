/**
 * threadpool: what mf's patch to node-llama-cpp (a persistent, polling ggml threadpool per context, as
 * llama-server attaches) does to generation speed, measured with node-llama-cpp called directly on the
 * engine `mf engine build` made (MF_ENGINE_DIR, built first when missing), on the generated 200M F16
 * model, CPU only, at 2 and 1 threads:
 *
 *   - no pool (NODE_LLAMA_CPP_THREADPOOL_POLL=off: ggml creates and joins its workers in every decode, as
 *     node-llama-cpp's published addon does), the pool with poll 0 (workers sleep between graphs) and the
 *     pool with poll 50 (llama-server's default: workers spin a while before sleeping);
 *   - the same on an idle machine and beside one CPU-bound competitor (a busy loop in another process),
 *     the contention the "default settings with one competitor" row is about.
 *
 * Each configuration gets a fresh context per run (so no idle pool spins beside the one measured), runs in
 * rotating order, and reports generation tokens/s (tokens after the first ÷ first-to-last time) as the
 * median (min–max) of the runs.
 *
 *   npm run bench -- threadpool [--reps 5] [--tokens 64] [--threads 2,1]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LlamaCompletion, LlamaLogLevel } from "node-llama-cpp";
import { resolveConfig } from "../core/config.js";
import { chooseEngine, loadBinding } from "../runtime/engine/binding.js";
import { BENCH_200M, cachedFixture } from "../fixtures/gguf/index.js";
import { CACHE, ROOT, fmtStat, ratio, report, stat, table, type Stat } from "./lib.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "threadpool"),
  options: {
    reps: { type: "string", default: "5" },
    tokens: { type: "string", default: "64" },
    threads: { type: "string", default: "2,1" },
  },
});
const reps = Number(values.reps);
const tokens = Number(values.tokens);
const threadCounts = values.threads.split(",").map(Number);
const SAMPLING = { seed: 42, temperature: 0.8, topK: 40, topP: 0.9, minP: 0 };

const engineDir = resolveConfig().engineDir;
let engine = await chooseEngine({ dir: engineDir, gpu: false });
if (engine.kind !== "built") {
  process.stderr.write(`building the engine (mf engine build, ≈12 min on 2 cores the first time)…\n`);
  const r = spawnSync(process.execPath, [join(ROOT, "dist", "cli", "main.js"), "engine", "build", "--no-gpu", "--dir", engineDir], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error("mf engine build failed");
  engine = await chooseEngine({ dir: engineDir, gpu: false });
  if (engine.kind !== "built") throw new Error(`the engine was built but is not usable: ${engine.description}`);
}
const llama = await loadBinding(engine, { gpu: false, logLevel: LlamaLogLevel.error });
const modelPath = await cachedFixture(BENCH_200M, CACHE);
const model = await llama.loadModel({ modelPath });
const STORY = "Once upon a time, in a village at the edge of a great forest, there lived an old clockmaker who ";
let promptNo = 0;

type Pool = "off" | "0" | "50";
const POOL_NAME: Record<Pool, string> = { off: "no pool (as published)", "0": "pool, poll 0", "50": "pool, poll 50 (llama-server's)" };

/** Generation tokens/s of one run on a fresh context with the given pool setting. */
async function run(threads: number, pool: Pool): Promise<number> {
  process.env.NODE_LLAMA_CPP_THREADPOOL_POLL = pool;
  const context = await model.createContext({ contextSize: 1024, threads, sequences: 1 });
  try {
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    let first = 0n;
    let last = 0n;
    let n = 0;
    await completion.generateCompletion(`Story ${promptNo++}. ${STORY}`, {
      maxTokens: tokens,
      ...SAMPLING,
      repeatPenalty: false,
      onToken: (t) => {
        last = process.hrtime.bigint();
        if (n === 0) first = last;
        n += t.length;
      },
    });
    completion.dispose({ disposeSequence: true });
    return ((n - 1) * 1e9) / Number(last - first);
  } finally {
    await context.dispose();
  }
}

async function measure(threads: number, pools: Pool[]): Promise<Map<Pool, Stat>> {
  const got = new Map(pools.map((p) => [p, [] as number[]]));
  for (const p of pools) await run(threads, p); // warm-up
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < pools.length; k++) {
      const p = pools[(k + i) % pools.length]!;
      const tps = await run(threads, p);
      got.get(p)!.push(tps);
      process.stderr.write(`  ${threads} thread(s), ${POOL_NAME[p]}: ${tps.toFixed(1)} tok/s\n`);
    }
  }
  return new Map([...got].map(([p, runs]) => [p, stat(runs)]));
}

function competitor(): ChildProcess {
  return spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
}

const sections: string[] = [];
const rows: string[][] = [];
for (const contended of [false, true]) {
  const busy = contended ? competitor() : undefined;
  try {
    for (const threads of threadCounts) {
      const pools: Pool[] = ["off", "0", "50"];
      process.stderr.write(`threadpool: ${threads} thread(s)${contended ? ", one competitor" : ""}…\n`);
      const load = loadavg()[0]!;
      const r = await measure(threads, pools);
      // the machine's own load (other processes) is part of the figures: say how much there was
      const where = `${contended ? "one CPU-bound competitor" : "no competitor"} (load average ${load.toFixed(1)}–${loadavg()[0]!.toFixed(1)})`;
      const off = r.get("off")!.median;
      for (const p of pools) rows.push([where, String(threads), POOL_NAME[p], fmtStat(r.get(p)!), ratio(r.get(p)!.median, off)]);
    }
  } finally {
    busy?.kill("SIGKILL");
  }
}
sections.push(table(["beside", "threads", "engine", "gen tok/s", "÷ no pool"], rows));
delete process.env.NODE_LLAMA_CPP_THREADPOOL_POLL;
await model.dispose();
await llama.dispose();

report(
  "threadpool",
  `## threadpool: mf's persistent ggml threadpool per context\n\n` +
    `node-llama-cpp called directly on the engine \`mf engine build\` made here (${engine.description}); ` +
    `model BENCH_200M (F16, CPU only), ${tokens} tokens generated per run, seed 42, temperature 0.8, top_k 40, top_p 0.9; ` +
    `a fresh context per run; ${reps} runs per row in rotating order, medians (min–max). ` +
    `"no pool" is NODE_LLAMA_CPP_THREADPOOL_POLL=off (ggml's throwaway workers per decode, as node-llama-cpp's published addon); ` +
    `the competitor is one busy-looping process at the same priority. At 1 thread a pool has no worker thread (the decoding thread is its only one), ` +
    `so its rows differ by noise only. The load average (1 min, before–after each block) counts every other process on the machine.\n\n` +
    sections.join("\n\n") +
    `\n\nCommand: \`npm run bench -- threadpool --reps ${reps} --tokens ${tokens} --threads ${threadCounts.join(",")}\``,
);
