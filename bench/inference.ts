/**
 * inference: generation speed of `mf serve` over HTTP (the built binary, a separate process, streamed
 * /api/generate) against node-llama-cpp called directly (LlamaCompletion) on the generated ~200M-parameter
 * F16 model, with the same threads, prompt, seed and sampling, alternating in the same run. Tokens/s is
 * measured the same way on both sides, from the first generated token to the last (the prompt and the
 * load excluded); each figure is the median of `--reps` runs with the min–max spread.
 *
 *   npm run build && npx tsx bench/inference.ts [--reps 5] [--tokens 128] [--threads 1]
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LlamaCompletion, LlamaLogLevel, getLlama } from "node-llama-cpp";
import { buildImage } from "../builder/build.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { BENCH_200M, cachedFixture } from "../fixtures/gguf/index.js";
import { CACHE, ROOT, report, stat, table } from "./lib.js";

const { values } = parseArgs({
  options: { reps: { type: "string", default: "5" }, tokens: { type: "string", default: "128" }, threads: { type: "string", default: "1" } },
});
const reps = Number(values.reps);
const tokens = Number(values.tokens);
const threads = Number(values.threads);
const PROMPT = "Once upon a time, in a land far away, there lived";
const SAMPLING = { seed: 42, temperature: 0.8, topK: 40, topP: 0.9 };
const NUM_CTX = 1024;

mkdirSync(CACHE, { recursive: true });
const modelPath = await cachedFixture(BENCH_200M, CACHE);
const storeDir = join(CACHE, "inference-store");
rmSync(storeDir, { recursive: true, force: true });
const store = new LocalStore(storeDir);
await buildImage(
  { commands: [{ kind: "from", value: modelPath }, { kind: "parameter", name: "num_ctx", value: String(NUM_CTX) }] },
  { store, tags: [parseRef("bench")], resolve: { baseDir: CACHE, contextDir: CACHE, homeDir: CACHE }, link: true },
);

// node-llama-cpp directly
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: NUM_CTX, threads, sequences: 1 });
async function direct(): Promise<{ rate: number; n: number }> {
  const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
  let first = 0n;
  let last = 0n;
  let n = 0;
  await completion.generateCompletion(PROMPT, {
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
  return { rate: ((n - 1) * 1e9) / Number(last - first), n };
}

// mf serve, a separate process, over HTTP
const server = spawn(process.execPath, [join(ROOT, "dist", "cli", "main.js"), "serve", "--host", "127.0.0.1:0", "--no-gpu", "--threads", String(threads)], {
  env: { ...process.env, MF_MODELS: storeDir, MF_NUM_PARALLEL: "1" },
  stdio: ["ignore", "pipe", "inherit"],
});
const base = await new Promise<string>((res, rej) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) res(m[1]!);
  });
  server.on("exit", (c) => rej(new Error(`mf serve exited ${c}`)));
});
async function served(): Promise<{ rate: number; n: number; serverRate: number }> {
  const res = await fetch(base + "/api/generate", {
    method: "POST",
    body: JSON.stringify({
      model: "bench", prompt: PROMPT, raw: true,
      options: { num_predict: tokens, seed: SAMPLING.seed, temperature: SAMPLING.temperature, top_k: SAMPLING.topK, top_p: SAMPLING.topP, repeat_penalty: 1 },
    }),
  });
  let first = 0n;
  let end = 0n;
  let final: { eval_count: number; eval_duration: number } | undefined;
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const now = process.hrtime.bigint();
    buf += dec.decode(chunk, { stream: true });
    for (let i; (i = buf.indexOf("\n")) >= 0; ) {
      const obj = JSON.parse(buf.slice(0, i)) as { done: boolean; eval_count: number; eval_duration: number };
      buf = buf.slice(i + 1);
      if (!obj.done && first === 0n) first = now;
      if (obj.done) {
        final = obj;
        end = now;
      }
    }
  }
  const f = final!;
  return { rate: ((f.eval_count - 1) * 1e9) / Number(end - first), n: f.eval_count, serverRate: (f.eval_count * 1e9) / f.eval_duration };
}

try {
  await direct(); // warm-up both sides (page cache, first load)
  await served();
  const d: number[] = [];
  const m: number[] = [];
  const s: number[] = [];
  const counts = new Set<string>();
  const r: number[] = [];
  for (let i = 0; i < reps; i++) {
    // ABBA order, so that a drift of the machine's load favours neither side
    let a: Awaited<ReturnType<typeof direct>>;
    let b: Awaited<ReturnType<typeof served>>;
    if (i % 2 === 0) {
      a = await direct();
      b = await served();
    } else {
      b = await served();
      a = await direct();
    }
    r.push(b.rate / a.rate);
    d.push(a.rate);
    m.push(b.rate);
    s.push(b.serverRate);
    counts.add(`${a.n}/${b.n}`);
    process.stderr.write(`run ${i + 1}: direct ${a.rate.toFixed(1)} tok/s (${a.n}), mf serve ${b.rate.toFixed(1)} tok/s (${b.n})\n`);
  }
  const sd = stat(d);
  const sm = stat(m);
  const ss = stat(s);
  const fmt = (x: ReturnType<typeof stat>) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;
  report(
    "inference",
    `## inference: mf serve over HTTP vs node-llama-cpp directly\n\n` +
      `Model: generated BENCH_200M (${(BENCH_200M.embeddingLength)}-wide, ${BENCH_200M.blockCount} layers, F16), CPU, threads ${threads}, ` +
      `${tokens} tokens per run (generated tokens direct/mf: ${[...counts].join(", ")}), ${reps} runs, medians (min–max).\n\n` +
      table(
        ["", "tokens/s"],
        [
          ["node-llama-cpp direct (LlamaCompletion)", fmt(sd)],
          ["mf serve over HTTP (client-side)", fmt(sm)],
          ["mf serve, its own eval_count / eval_duration", fmt(ss)],
          ["ratio mf / direct (client-side medians)", (sm.median / sd.median).toFixed(3)],
          ["ratio mf / direct (median of per-pair ratios)", `${stat(r).median.toFixed(3)} (${stat(r).min.toFixed(3)}–${stat(r).max.toFixed(3)})`],
        ],
      ),
  );
} finally {
  server.kill("SIGTERM");
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}
