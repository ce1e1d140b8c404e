/**
 * Defaults on this machine, end to end: `mf serve` started as a user starts it (no --threads, no
 * MF_THREADS, an image without num_thread) against the same binary with each explicit thread count up
 * to the usable CPUs, in the same run, in rotating order. The assertion is a ratio of generation rates
 * (streamed tokens after the first ÷ the time from the first to the last; a run that has collapsed is
 * cut after a while, so it costs seconds, not minutes), never a time: the defaults reach at least
 * MIN_RATIO × the best explicit count, on the machine as it is, and with one CPU-bound competitor
 * running beside it. What this guards against is the collapse of llama.cpp's spinning workers when they
 * outnumber the free cores: node-llama-cpp's own default (4 threads on 2 cores) measured 0.00–0.04× here,
 * and physical cores without the load measurement 0.02–0.04× on this shared machine. The finer figure
 * (target ≥ 0.9×) is the bench's (`npm run bench -- inference`, its defaults part).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { getLlama } from "node-llama-cpp";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { type LlamaGgufConfig, cachedFixture } from "../../fixtures/gguf/index.js";
import { readCpuFacts } from "../../runtime/engine/cpu.js";
import { planThreads } from "../../runtime/engine/threads.js";
import { ROOT, type ServingMf, serveMf } from "../helpers/mf.js";

/** ~25M parameters (≈50 MB F16): big enough that a second thread helps on an idle machine, small enough to write in seconds */
const MID: LlamaGgufConfig = {
  seed: 3,
  name: "mf-threads-mid",
  contextLength: 1024,
  embeddingLength: 512,
  blockCount: 6,
  feedForwardLength: 1408,
  headCount: 8,
  headCountKv: 4,
  vocabSize: 4096,
  matrixType: "F16",
};
const TOKENS = 64;
/**
 * On a shared 2-core machine single runs vary 2–4× from one to the next: beside the competitor, where
 * the defaults run 1 thread as `--threads 1` does, their medians came out 0.73–1.09× of each other; a
 * collapse is 0.00–0.04×.
 */
const MIN_RATIO = 0.6;
/** a run is cut this long after its first token (the rate stays a rate) */
const CUT_MS = 1500;
/** rounds; the medians of this many runs per side (the machine is shared: single runs vary twice over) */
const REPS = 9;
/**
 * The defaults' runs start after this much quiet from the test itself: mf counts the previous side's
 * run as other processes' load, and gives a default-count model its threads back after a second of calm.
 */
const SETTLE_MS = 1200;

interface Server extends ServingMf {
  name: string;
}

let dir: string;
const servers: Server[] = [];
const competitors: ChildProcess[] = [];

function stopProc(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  const gone = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGTERM");
  return gone;
}

/** `mf serve ARGS` as a user starts it: no MF_THREADS */
async function serve(name: string, args: string[]): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_KEEP_ALIVE: "-1" };
  delete env.MF_THREADS;
  delete env.MF_DEBUG;
  const s = { name, ...(await serveMf(["--no-gpu", ...args], env)) };
  servers.push(s);
  return s;
}

let prompt = 0;
/**
 * One streamed generation; its rate in tokens/s from the first token to the last. A run is cut CUT_MS
 * after its first token (or 3 × CUT_MS after the request, when no token has come): its rate is then
 * the tokens after the first ÷ the time from the first to the cut (0 when none came).
 */
async function rate(s: Server): Promise<number> {
  if (s.name === "defaults") await new Promise((r) => setTimeout(r, SETTLE_MS));
  const stop = new AbortController();
  let cutAt = 0;
  const cut = () => {
    cutAt = performance.now();
    stop.abort();
  };
  let timer = setTimeout(cut, 3 * CUT_MS);
  let first = 0;
  let last = 0;
  let n = 0;
  try {
    const r = await fetch(s.base + "/api/generate", {
      method: "POST",
      body: JSON.stringify({ model: "mid", prompt: `Story ${prompt++}. Once upon a time`, raw: true, options: { num_predict: TOKENS, temperature: 0, seed: 1 } }),
      signal: stop.signal,
    });
    if (r.status !== 200) assert.fail(`${s.name}: HTTP ${r.status} ${await r.text()}`);
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      const at = performance.now();
      buf += dec.decode(chunk, { stream: true });
      for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) {
        const o = JSON.parse(buf.slice(0, i)) as { done: boolean; error?: string };
        assert.equal(o.error, undefined);
        if (o.done) continue;
        if (n++ === 0) {
          first = at;
          clearTimeout(timer);
          timer = setTimeout(cut, CUT_MS);
        }
        last = at;
      }
    }
  } catch (e) {
    if (!stop.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  // a cut run's server notices the closed connection at its next token: let it stop spinning before
  // the next side is measured
  if (stop.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
  if (n < 2) return 0;
  return ((n - 1) * 1000) / ((stop.signal.aborted ? cutAt : last) - first);
}

/** every run's rate of the last measure(), for the diagnostics */
let runs = new Map<string, number[]>();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Median rates of every server over REPS rotating rounds, after a warm-up that loads the model. */
async function measure(): Promise<Map<string, number>> {
  for (const s of servers) await rate(s);
  const got = new Map(servers.map((s) => [s.name, [] as number[]]));
  for (let i = 0; i < REPS; i++) {
    // rotating, and every other round backwards, so that no server always follows the same one
    const order = servers.map((_, k) => servers[(k + i) % servers.length]!);
    if (i % 2) order.reverse();
    for (const s of order) {
      got.get(s.name)!.push(await rate(s));
    }
  }
  runs = got;
  return new Map([...got].map(([k, v]) => [k, median(v)]));
}

function judge(m: Map<string, number>, what: string, t: { diagnostic(message: string): void }): void {
  const defaults = m.get("defaults")!;
  const [bestName, best] = [...m].filter(([k]) => k !== "defaults").sort((a, b) => b[1] - a[1])[0]!;
  const figures = [...m].map(([k, v]) => `${k} ${v.toFixed(0)} tok/s`).join(", ");
  t.diagnostic(`runs: ${[...runs].map(([k, v]) => `${k} [${v.map((x) => x.toFixed(0)).join(" ")}]`).join(", ")}`);
  t.diagnostic(`${what}: ${figures}; defaults ÷ best = ${(defaults / best).toFixed(2)}×`);
  assert.ok(defaults / best >= MIN_RATIO, `${what}: defaults ÷ best explicit (${bestName}) = ${(defaults / best).toFixed(2)}× (${figures})`);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-threads-speed-"));
  const gguf = await cachedFixture(MID, join(ROOT, ".mf-test-cache"));
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, "Modelfile"), `FROM ${gguf}\nPARAMETER num_ctx 512\n`);
  await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("mid")], contextDir: ctx, homeDir: dir });
  const llama = await getLlama({ gpu: false, build: "never" });
  const plan = planThreads({ ...readCpuFacts(), mathCores: llama.cpuMathCores });
  await llama.dispose();
  await serve("defaults", []);
  // every explicit count up to the usable CPUs (capped at 4 on big machines, with the policy's own count)
  const counts = new Set([...Array.from({ length: Math.min(plan.usable, 4) }, (_, i) => i + 1), plan.threads]);
  for (const n of counts) await serve(`--threads ${n}`, ["--threads", String(n)]);
});

after(async () => {
  for (const c of competitors) await stopProc(c);
  for (const s of servers) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

test("mf serve's default thread count generates at ≥ MIN_RATIO × the best explicit count, never collapsing", async (t) => {
  judge(await measure(), "as the machine is", t);
});

test("…and still does with a CPU-bound competitor on the machine", async (t) => {
  const c = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  competitors.push(c);
  try {
    // the servers measure the CPUs' load every 200 ms: let them see the competitor
    await new Promise((r) => setTimeout(r, 1000));
    judge(await measure(), "with one CPU-bound competitor", t);
  } finally {
    await stopProc(c);
  }
});
