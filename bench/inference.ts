/**
 * inference: on the generated ~200M-parameter F16 model (BENCH_200M), CPU only, the same prompt, seed,
 * sampling and thread count on every side, measured side by side in one run, in rotating order:
 *
 *   (a) `mf serve` (the built binary, its own process) over HTTP, streamed /api/generate, raw prompt
 *   (b) node-llama-cpp called directly (LlamaCompletion), in this process
 *   (c) `llama-server` (what Ollama runs models with), streamed `/completion`, and `llama-bench` (the
 *       engine's raw speed), both built once with cmake from the llama.cpp source node-llama-cpp ships
 *       (bench/build-llama-cpp.sh; cached in ~/.cache/mf-bench/)
 *
 * Engine build: node-llama-cpp's prebuilt linux-x64 binary is a portable build, while cmake builds
 * llama-server and llama-bench for this CPU (GGML_NATIVE); on a CPU with AVX-512 the portable build
 * is markedly slower (here: 36.5 tok/s direct, against 54–68 with the binding built for the CPU). So
 * that every side runs the same engine, `--engine native` (the default) runs the engine `mf engine build`
 * makes from the same bundled source for this CPU (built first when missing, ≈12 min on 2 cores, once:
 * it stays in MF_ENGINE_DIR, default ~/.mf/engine), directly here and in mf serve. `--engine prebuilt`
 * measures the binary npm installed. The results name the binary every node-llama-cpp side ran.
 * Flash attention is "auto" on every side with a thread count: llama-server's and llama-bench's default,
 * mf serve's (MF_FLASH_ATTENTION), and node-llama-cpp direct is given it (its own default is off, which the
 * defaults part keeps, as a user gets it).
 *
 * Figures, all taken on the client side the same way: time to first token (request sent → first
 * token), prompt-eval tokens/s (prompt tokens ÷ that time), generation tokens/s (tokens after the
 * first ÷ the time from the first to the last); at 2 and 1 threads, where the same mf serve is also asked
 * with `stream: false` (its loop without a socket write and a client's read a token, timed by the server's
 * own eval_count and eval_duration, which span the same tokens); then 1 vs 4 concurrent clients
 * (aggregate generated tokens ÷ wall time, and the 4 clients' times to their first token: mean and last)
 * against `mf serve` with MF_NUM_PARALLEL=4 and `llama-server -np 4`. Every prompt starts differently, so
 * no side reuses a cached prompt. Last, "draft": speculative decoding, mf serve with a target and its
 * agreeing draft ÷ the same target alone, at temperature 0 (inference-draft.ts); `--draft-only` runs that
 * part alone (no llama.cpp build, no 200M model).
 *
 * Defaults: each side as a user starts it, with no thread setting (`mf serve` without --threads or
 * MF_THREADS; node-llama-cpp's `createContext()` without `threads`; `llama-server` without -t/-tb),
 * against the same side at each explicit count of --threads, all in one rotation; then the same with
 * one CPU-bound competitor process running beside them. The figure is default ÷ best explicit count.
 * Each run starts 1.2 s after the one before (a machine left alone by the bench itself, as a user's
 * request usually finds it).
 * A run that has collapsed (more spinning threads than free cores: node-llama-cpp's default of 4
 * threads on 2 cores ran at under 1 tok/s) is cut --cut-s seconds after its first token, and its rate
 * is the tokens after the first ÷ the time to the cut; a healthy run never comes near it.
 *
 * "ahead" (only when asked for, on the built engine): mf serve with and without the decode ahead
 * (NODE_LLAMA_CPP_DECODE_AHEAD=off), beside llama-server, at each thread count, in one rotation: what the
 * decode ahead is worth where mf's step loop asks for it (the decode's threads fewer than the CPUs).
 *
 * "cpu" (only when asked for): where a generated token's CPU time goes, for mf serve and llama-server at each
 * thread count: the decode's threads, the server's other threads (mf serve's JavaScript thread apart), and
 * the client reading the stream, from /proc; on a machine with no CPU to spare, all that is not the
 * decode's is taken from it.
 *
 *   npm run bench -- inference [--reps 5] [--tokens 128] [--threads 2,1] [--clients 4] [--engine=native|prebuilt]
 *                              [--parts=threads,concurrency,defaults,draft,ahead,cpu] [--cut-s 20] [--no-llama-cpp]
 * (a flag's value that is not a number goes after `=`: `npm run bench` takes other words for section names)

 *   npm run bench -- inference [--reps 5] [--tokens 128] [--threads 2,1] [--clients 4] [--engine native|prebuilt] [--draft-only] [--draft-predict 4,15]
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { homedir, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { LlamaCompletion, LlamaLogLevel, type LlamaContext } from "node-llama-cpp";
import { buildImage } from "../builder/build.js";
import { resolveConfig } from "../core/config.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { BENCH_200M, cachedFixture } from "../fixtures/gguf/index.js";
import { chooseEngine, loadBinding } from "../runtime/engine/binding.js";
import { statTicks } from "../runtime/engine/cpu.js";
import { freePort } from "../test/registry/peers.js";
import { CACHE, ROOT, fmtPaired, fmtStat, pairedRatio, ratio, report, startMfServe, stat, table, type PairedRatio, type Stat } from "./lib.js";
import { draftMeasurement } from "./inference-draft.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "inference"),
  options: {
    reps: { type: "string", default: "5" },
    tokens: { type: "string", default: "128" },
    threads: { type: "string", default: "2,1" },
    clients: { type: "string", default: "4" },
    "concurrent-reps": { type: "string", default: "3" },
    engine: { type: "string", default: "native" },
    /** which parts to run: per thread count, concurrent clients, defaults vs explicit counts */
    parts: { type: "string", default: "threads,concurrency,defaults,draft" },
    /** a run is cut this long after its first token (twice that after the request when none comes) */
    "cut-s": { type: "string", default: "20" },
    /** leave llama-server and llama-bench out (while they build); the full run never does */
    "no-llama-cpp": { type: "boolean", default: false },
    /** only the speculative-decoding measurement (its own models; no llama.cpp, no native build) */
    "draft-only": { type: "boolean", default: false },
    /** the draft_num_predict values of the speculative-decoding part, each in its own phase */
    "draft-predict": { type: "string", default: "4,15" },
  },
});
const reps = Number(values.reps);
const tokens = Number(values.tokens);
const threadCounts = values.threads.split(",").map(Number);
const clients = Number(values.clients);
const concurrentReps = Number(values["concurrent-reps"]);
const CUT_MS = Number(values["cut-s"]) * 1000;
const parts = new Set(values.parts.split(",").map((x) => x.trim()));
for (const p of parts) if (!["threads", "concurrency", "defaults", "draft", "ahead", "cpu"].includes(p)) throw new Error(`--parts takes threads, concurrency, defaults, draft, ahead and cpu, not ${p}`);
const SAMPLING = { seed: 42, temperature: 0.8, topK: 40, topP: 0.9, minP: 0 };
const NUM_CTX = 2048;
const STORY =
  "Once upon a time, in a land far away, there lived a miller who had three sons, a mill, a donkey and a cat. " +
  "When the miller died the eldest son took the mill, the second the donkey, and the youngest was left with nothing but the cat. " +
  "The young man sat down on a stone by the river and wondered how he would ever earn his bread, ";
/** The i-th prompt: a different first word each time, so no cached prefix beyond the BOS token. */
const promptOf = (i: number) => `Story ${i}. ${STORY}`;

interface One {
  /** ms from sending the request to the first token */
  ttft: number;
  /** tokens/s from the first token to the last */
  gen: number;
  n: number;
}

interface Side {
  name: string;
  one(prompt: string): Promise<One>;
  close(): Promise<void>;
  /** the server's process, when it has its own */
  pid?: number;
}

const hr = () => process.hrtime.bigint();
const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;

/** `end`: the last token's time, or the cut's when the run was cut */
function one(t0: bigint, first: bigint, end: bigint, n: number): One {
  return { ttft: first ? ms(t0, first) : ms(t0, end), gen: n > 1 ? ((n - 1) * 1000) / ms(first, end) : 0, n };
}

/**
 * Cuts a run CUT_MS after its first token (`first()` arms it), or 2 × CUT_MS after it began when no
 * token comes; `end(last)` is the time the rate runs to.
 */
function cutter() {
  const ctl = new AbortController();
  let at = 0n;
  const cut = () => {
    at = hr();
    ctl.abort();
  };
  let timer = setTimeout(cut, 2 * CUT_MS);
  let armed = false;
  return {
    signal: ctl.signal,
    first() {
      if (armed) return;
      armed = true;
      clearTimeout(timer);
      timer = setTimeout(cut, CUT_MS);
    },
    /** stops the timer; after a cut, waits a second so that the server notices the closed connection and stops spinning */
    async done(last: bigint): Promise<bigint> {
      clearTimeout(timer);
      if (!ctl.signal.aborted) return last;
      await new Promise((r) => setTimeout(r, 1000));
      return at;
    },
  };
}

/** Runs a streamed request to its end or its cut. */
async function untilCut(run: () => Promise<void>, c: ReturnType<typeof cutter>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (!c.signal.aborted) throw e;
  }
}

/** Reads newline-separated records (NDJSON or SSE) of a streamed response, calling `on` with each line and its arrival time. */
async function lines(res: Response, on: (line: string, at: bigint) => void): Promise<void> {
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    const at = hr();
    buf += dec.decode(chunk, { stream: true });
    for (let i; (i = buf.indexOf("\n")) >= 0; ) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) on(line, at);
    }
  }
  const rest = buf.trim(); // a last record without its line end
  if (rest) on(rest, hr());
}

function waitExit(child: ChildProcess): Promise<void> {
  return new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res() : child.once("exit", () => res())));
}

async function stop(child: ChildProcess): Promise<void> {
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await waitExit(child);
  clearTimeout(t);
}

async function waitHealthy(url: string, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up`);
}

const draftPredicts = values["draft-predict"].split(",").map(Number);
if (values["draft-only"]) {
  // the engine mf serve would run here; never built by this part (see --engine for the full run)
  const choice = await chooseEngine({ dir: resolveConfig().engineDir, gpu: false });
  const llama = await loadBinding(choice, { gpu: false, logLevel: LlamaLogLevel.error });
  const d = await draftMeasurement({ reps, tokens, threads: threadCounts[0]!, predicts: draftPredicts, engineNote: choice.description, llama });
  await llama.dispose();
  report(
    "inference-draft",
    `## inference: speculative decoding\n\n${table(["question", "mf", "peer", "ratio", "target"], d.rows)}\n\n${d.section}\n\n` +
      `Command: \`npm run bench -- inference --draft-only --reps ${reps} --tokens ${tokens} --threads ${threadCounts[0]} --draft-predict ${values["draft-predict"]}\``,
  );
  process.exit(0);
}

// ---- the model and its image --------------------------------------------------------------------
mkdirSync(CACHE, { recursive: true });
const modelPath = await cachedFixture(BENCH_200M, CACHE);
const storeDir = join(CACHE, "inference-store");
rmSync(storeDir, { recursive: true, force: true });
const store = new LocalStore(storeDir);
await buildImage(
  { commands: [{ kind: "from", value: modelPath }, { kind: "parameter", name: "num_ctx", value: String(NUM_CTX) }] },
  { store, tags: [parseRef("bench")], resolve: { baseDir: CACHE, contextDir: CACHE, homeDir: CACHE }, link: true },
);

// ---- llama.cpp's own binaries -------------------------------------------------------------------
/** The llama.cpp release node-llama-cpp bundles: the source of llama-server, llama-bench and a CPU-built binding. */
const release = (JSON.parse(readFileSync(join(ROOT, "node_modules/node-llama-cpp/llama/binariesGithubRelease.json"), "utf8")) as { release: string }).release;
function llamaCppBin(): string {
  const dir = join(homedir(), ".cache", "mf-bench", `llama.cpp-${release}`);
  if (!existsSync(join(dir, "bin", "llama-server")) || !existsSync(join(dir, "bin", "llama-bench"))) {
    process.stderr.write(`building llama-server and llama-bench from node-llama-cpp's llama.cpp source into ${dir} (≈11 min on 2 cores)…\n`);
    const r = spawnSync("bash", [join(ROOT, "bench", "build-llama-cpp.sh"), dir], { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) throw new Error("building llama.cpp failed");
  }
  return join(dir, "bin");
}
const withLlamaCpp = !values["no-llama-cpp"];
const bin = withLlamaCpp ? llamaCppBin() : "";

// ---- node-llama-cpp's binary ---------------------------------------------------------------------
/** The engine mf serve runs here (MF_ENGINE_DIR, default ~/.mf/engine), built by `mf engine build` when missing. */
if (values.engine !== "native" && values.engine !== "prebuilt") throw new Error(`--engine is native or prebuilt, not ${values.engine}`);
const engineDir = resolveConfig().engineDir;
let engine = await chooseEngine({ dir: engineDir, gpu: false });
if (values.engine === "native" && engine.kind !== "built") {
  process.stderr.write(`building the engine for this CPU from node-llama-cpp's bundled llama.cpp ${release} (≈12 min on 2 cores)…\n`);
  const r = spawnSync(process.execPath, [join(ROOT, "dist", "cli", "main.js"), "engine", "build", "--no-gpu", "--dir", engineDir], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error("mf engine build failed");
  engine = await chooseEngine({ dir: engineDir, gpu: false });
  if (engine.kind !== "built") throw new Error(`the engine was built but is not usable: ${engine.description}`);
}
if (values.engine === "prebuilt") engine = { kind: "prebuilt", description: "node-llama-cpp's prebuilt binary (--engine prebuilt)" };

// ---- the three sides ----------------------------------------------------------------------------
const llama = await loadBinding(engine, { gpu: false, logLevel: LlamaLogLevel.error });
const engineNote = engine.kind === "built"
  ? "node-llama-cpp (direct and inside mf serve) ran the engine `mf engine build` made here from its bundled llama.cpp for this CPU (with mf's persistent threadpool), the same source and CPU flags as llama-server and llama-bench"
  : "node-llama-cpp (direct and inside mf serve) ran its prebuilt portable binary from npm, llama-server and llama-bench a build for this CPU";
const model = await llama.loadModel({ modelPath });
const promptTokens = (p: string) => model.tokenize(p).length + (model.tokens.shouldPrependBosToken ? 1 : 0);

/**
 * `threads` undefined: node-llama-cpp's own defaults, as `createContext()` gives a user (flash attention
 * off); a count: the engine as mf serve and llama-server run it, flash attention "auto" as theirs
 */
async function directSide(threads: number | undefined): Promise<Side> {
  const context: LlamaContext = await model.createContext({ contextSize: NUM_CTX, ...(threads === undefined ? {} : { threads, flashAttention: "auto" }), sequences: 1 });
  return {
    name: "node-llama-cpp direct",
    async one(prompt) {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      let first = 0n;
      let last = 0n;
      let n = 0;
      const c = cutter();
      const t0 = hr();
      await completion.generateCompletion(prompt, {
        maxTokens: tokens,
        ...SAMPLING,
        repeatPenalty: false,
        signal: c.signal,
        stopOnAbortSignal: true,
        onToken: (t) => {
          last = hr();
          if (n === 0) {
            first = last;
            c.first();
          }
          n += t.length;
        },
      }).catch((e: unknown) => {
        if (!c.signal.aborted) throw e;
      });
      completion.dispose({ disposeSequence: true });
      return one(t0, first, await c.done(last), n);
    },
    close: () => context.dispose(),
  };
}

/** A request to mf serve's /api/generate, with SAMPLING's settings in the API's names. */
const mfRequest = (prompt: string, stream: boolean) =>
  JSON.stringify({
    model: "bench", prompt, raw: true, stream, keep_alive: -1,
    options: { num_predict: tokens, seed: SAMPLING.seed, temperature: SAMPLING.temperature, top_k: SAMPLING.topK, top_p: SAMPLING.topP, min_p: SAMPLING.minP, repeat_penalty: 1 },
  });

/** An mf serve side, with the address its process listens on. */
type MfSide = Side & { base: string };
const NOT_STREAMED = "mf serve, not streamed (its own timing)";

/** `threads` undefined: mf's own default (no --threads, no MF_THREADS); `extraEnv` added to its environment */
async function mfSide(threads: number | undefined, parallel: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<MfSide> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv, MF_MODELS: storeDir, MF_NUM_PARALLEL: String(parallel), MF_KEEP_ALIVE: "-1", MF_ENGINE_DIR: engine.kind === "built" ? engineDir : join(CACHE, "no-engine") };
  delete env.MF_THREADS;
  const { base, child } = await startMfServe(threads === undefined ? [] : ["--threads", String(threads)], env);
  return {
    name: parallel > 1 ? `mf serve (MF_NUM_PARALLEL=${parallel})` : "mf serve over HTTP",
    pid: child.pid,
    base,
    async one(prompt) {
      const c = cutter();
      const t0 = hr();
      let first = 0n;
      let last = 0n;
      let n = 0;
      let chunks = 0;
      await untilCut(async () => {
        const res = await fetch(base + "/api/generate", {
          method: "POST",
          body: mfRequest(prompt, true),
          signal: c.signal,
        });
        await lines(res, (line, at) => {
          const o = JSON.parse(line) as { done: boolean; response: string; eval_count?: number };
          if (!o.done && o.response && first === 0n) {
            first = at;
            c.first();
          }
          if (!o.done) {
            last = at;
            chunks++;
          }
          if (o.done) n = o.eval_count ?? 0;
        });
      }, c);
      // a cut run has no final count: every streamed chunk then carries one token
      return one(t0, first, await c.done(last), n || chunks);
    },
    close: () => stop(child),
  };
}

/**
 * The same mf serve asked with `stream: false`: its loop without a socket write and a client's read a token.
 * The rate is the server's own (`eval_count` − 1 tokens over `eval_duration`, which runs from the first token
 * to the last, as the client-side rates do); TTFT is the client's wait less `eval_duration`.
 */
function notStreamed(mf: MfSide): Side {
  return {
    name: NOT_STREAMED,
    async one() {
      // a prompt of its own: the round's prompt went to the same mf serve, which would find it cached
      const prompt = promptOf(promptNo++);
      const c = cutter();
      const t0 = hr();
      const res = await fetch(mf.base + "/api/generate", {
        method: "POST",
        body: mfRequest(prompt, false),
        signal: c.signal,
      }).catch((e: unknown) => {
        throw c.signal.aborted ? new Error(`an answer not streamed took over ${(2 * CUT_MS) / 1000} s`) : e;
      });
      const o = (await res.json()) as { eval_count?: number; eval_duration?: number };
      const end = hr();
      await c.done(end);
      if (!res.ok || !o.eval_count || !o.eval_duration) throw new Error(`mf serve, not streamed: HTTP ${res.status} ${JSON.stringify(o)}`);
      return { ttft: ms(t0, end) - o.eval_duration / 1e6, gen: ((o.eval_count - 1) * 1e9) / o.eval_duration, n: o.eval_count };
    },
    close: async () => undefined, // the streamed side's close stops the process
  };
}

/** `threads` undefined: llama-server's own default (no -t, -tb) */
async function llamaServerSide(threads: number | undefined, parallel: number): Promise<Side> {
  const port = await freePort();
  const child = spawn(
    join(bin, "llama-server"),
    ["-m", modelPath, ...(threads === undefined ? [] : ["-t", String(threads), "-tb", String(threads)]), "-c", String(NUM_CTX * parallel), "-np", String(parallel), "-ngl", "0",
      "--host", "127.0.0.1", "--port", String(port), "--no-webui", "--log-disable"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  child.stderr!.on("data", (d) => (err = (err + d).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(base + "/health", child, "llama-server");
  } catch (e) {
    child.kill("SIGKILL");
    throw new Error(`${(e as Error).message}: ${err}`);
  }
  return {
    name: parallel > 1 ? `llama-server -np ${parallel}` : "llama-server /completion",
    pid: child.pid,
    async one(prompt) {
      const c = cutter();
      const t0 = hr();
      let first = 0n;
      let last = 0n;
      let n = 0;
      let chunks = 0;
      await untilCut(async () => {
        const res = await fetch(base + "/completion", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            // ignore_eos: llama-server's sampler stops at an end token on random weights where node-llama-cpp's
            // does not; every side then generates exactly `tokens`, so the rates and aggregates compare like for like
            prompt, n_predict: tokens, ignore_eos: true, stream: true, cache_prompt: false, seed: SAMPLING.seed, temperature: SAMPLING.temperature,
            top_k: SAMPLING.topK, top_p: SAMPLING.topP, min_p: SAMPLING.minP, repeat_penalty: 1,
          }),
          signal: c.signal,
        });
        await lines(res, (line, at) => {
          if (!line.startsWith("data: ")) return;
          const o = JSON.parse(line.slice(6)) as { stop: boolean; content: string; tokens_predicted?: number; timings?: { predicted_n: number } };
          if (!o.stop && first === 0n) {
            first = at;
            c.first();
          }
          if (!o.stop) {
            last = at;
            chunks++;
          }
          if (o.stop) n = o.tokens_predicted ?? o.timings?.predicted_n ?? 0;
        });
      }, c);
      // every streamed chunk carries at least one token; the final chunk's count when it has one
      return one(t0, first, await c.done(last), Math.max(n, chunks));
    },
    close: () => stop(child),
  };
}

const execFileAsync = promisify(execFile);

/**
 * llama-bench as a side of the rotation: in each round, one run (after its warm-up) generating `tokens`
 * after `nPrompt` tokens in the context, as the servers do. It runs seconds from the servers' runs of the
 * same round, so that the stretch ratio gets a per-round figure like the others (the runs of `llamaBench`
 * below come minutes apart from them, and this machine's speed drifts that much). Its prompt is its own
 * (random tokens): TTFT and prompt eval do not apply.
 */
function llamaBenchSide(threads: number): Side {
  const args = ["-m", modelPath, "-t", String(threads), "-p", "0", "-n", String(tokens), "-d", String(nPrompt), "-r", "1", "-ngl", "0", "-o", "json"];
  return {
    name: LLAMA_BENCH_IN_ROTATION,
    one: async () => {
      const { stdout } = await execFileAsync(join(bin, "llama-bench"), args, { maxBuffer: 1 << 24 });
      const [row] = JSON.parse(stdout) as { avg_ts: number }[];
      return { ttft: NaN, gen: row?.avg_ts ?? NaN, n: tokens };
    },
    close: async () => {},
  };
}

/**
 * llama-bench's prompt (pp) and generation (tg) rates on an empty context, as the issue measured it (its
 * rate with the prompt's tokens in the context, where the servers generate, is `llamaBenchSide`'s, in the
 * rotation).
 */
function llamaBench(threads: number[], nPrompt: number): { threads: number; pp: number; tg: number }[] {
  const r = spawnSync(join(bin, "llama-bench"), ["-m", modelPath, "-t", threads.join(","), "-p", String(nPrompt), "-n", String(tokens), "-r", "3", "-ngl", "0", "-o", "json"], {
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`llama-bench failed: ${r.stderr.toString().slice(-2000)}`);
  const rows = JSON.parse(r.stdout.toString()) as { n_threads: number; n_prompt: number; n_gen: number; avg_ts: number }[];
  const at = (t: number, gen: boolean) => rows.find((x) => x.n_threads === t && (gen ? x.n_gen > 0 : x.n_prompt > 0))?.avg_ts ?? NaN;
  return threads.map((t) => ({ threads: t, pp: at(t, false), tg: at(t, true) }));
}

// ---- measuring ----------------------------------------------------------------------------------
interface Figures { ttft: Stat; pp: Stat; gen: Stat; counts: Set<number> }
const nPrompt = promptTokens(promptOf(0));
/** the name of llama-bench as a side of the rotation (`llamaBenchSide`) */
const LLAMA_BENCH_IN_ROTATION = `llama-bench tg${tokens} -d ${nPrompt}, one run in each round`;
let promptNo = 1;

/**
 * `settleMs`: a pause before each run, so that no side starts in the wake of the one before (mf serve
 * counts that as other processes' load and gives a default-count model its threads back after a second
 * of calm; a user's request seldom follows another program's burst by milliseconds).
 */
async function compare(sides: Side[], runs: number, settleMs = 0): Promise<Map<string, Figures>> {
  const got = new Map(sides.map((s) => [s.name, { ttft: [] as number[], gen: [] as number[], n: new Set<number>() }]));
  for (const s of sides) await s.one(promptOf(promptNo++)); // warm-up
  for (let i = 0; i < runs; i++) {
    // rotate the order, so that a drift of the machine's load favours no side
    const order = sides.map((_, k) => sides[(k + i) % sides.length]!);
    const prompt = promptOf(promptNo++);
    for (const s of order) {
      if (settleMs) await new Promise((r) => setTimeout(r, settleMs));
      const r = await s.one(prompt);
      const g = got.get(s.name)!;
      g.ttft.push(r.ttft);
      g.gen.push(r.gen);
      g.n.add(r.n);
      process.stderr.write(`  ${s.name}: ${Number.isNaN(r.ttft) ? "" : `TTFT ${r.ttft.toFixed(0)} ms, `}${r.gen.toFixed(1)} tok/s (${r.n} tokens)\n`);
    }
  }
  return new Map([...got].map(([k, g]) => [k, { ttft: stat(g.ttft), pp: stat(g.ttft.map((t) => (nPrompt * 1000) / t)), gen: stat(g.gen), counts: g.n }]));
}

/** The side under another name (one rotation holds the same tool at several thread counts). */
const named = (s: Side, name: string): Side => ({ ...s, name });

/** One CPU-bound process beside the sides, as another user's job would be; stopped by the returned function. */
async function competitor(): Promise<() => Promise<void>> {
  const c = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  // mf serve measures the CPUs' load every 200 ms; every side gets the same second to settle
  await new Promise((r) => setTimeout(r, 1000));
  return async () => {
    c.kill("SIGKILL");
    await waitExit(c);
  };
}

/** CPU time (ms) of each thread of a process, from /proc (Linux), by thread id */
function threadCpu(pid: number): Map<number, number> {
  const msPerTick = 1000 / 100; // USER_HZ
  const out = new Map<number, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(t), (statTicks(readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8")) ?? 0) * msPerTick);
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/**
 * Where a generated token's CPU time goes, server and client (this process, whose other parts are idle
 * meanwhile): the decode's threads (the `threads` busiest of the server's), the server's other threads
 * (for mf serve, its JavaScript thread first), and the client reading the stream. On a machine with no
 * CPU to spare, every millisecond beside the decode's threads is taken from them.
 */
async function cpuPerToken(side: Side, threads: number, runs: number): Promise<string[]> {
  await side.one(promptOf(promptNo++)); // loaded and warm
  const pid = side.pid!;
  const before = threadCpu(pid);
  const client = process.cpuUsage();
  const t0 = hr();
  let n = 0;
  for (let i = 0; i < runs; i++) n += (await side.one(promptOf(promptNo++))).n;
  const wall = ms(t0, hr());
  const used = process.cpuUsage(client);
  const delta = [...threadCpu(pid)].map(([tid, cpu]) => ({ tid, cpu: cpu - (before.get(tid) ?? 0) })).sort((a, b) => b.cpu - a.cpu);
  const decode = delta.slice(0, threads);
  const others = delta.slice(threads);
  const main = others.find((x) => x.tid === pid);
  const per = (x: number) => (x / n).toFixed(2);
  return [
    side.name, String(threads), per(wall), per(decode.reduce((a, x) => a + x.cpu, 0)),
    main ? per(main.cpu) : "",
    per(others.reduce((a, x) => a + x.cpu, 0)),
    per((used.user + used.system) / 1000),
  ];
}

const TOOLS = ["mf serve", "node-llama-cpp direct", "llama-server"] as const;

/** Every tool with no thread setting and at each explicit count, in one rotation; with a competitor or not. */
async function defaultsVsExplicit(withCompetitor: boolean): Promise<Map<string, Figures>> {
  const sides: Side[] = [];
  try {
    const make: Record<(typeof TOOLS)[number], (t: number | undefined) => Promise<Side>> = {
      "mf serve": (t) => mfSide(t, 1),
      "node-llama-cpp direct": (t) => directSide(t),
      "llama-server": (t) => llamaServerSide(t, 1),
    };
    for (const tool of TOOLS) {
      if (tool === "llama-server" && !withLlamaCpp) continue;
      sides.push(named(await make[tool](undefined), `${tool}: defaults`));
      for (const t of threadCounts) sides.push(named(await make[tool](t), `${tool}: ${t}t`));
    }
    const stopCompetitor = withCompetitor ? await competitor() : undefined;
    try {
      return await compare(sides, reps, 1200);
    } finally {
      await stopCompetitor?.();
    }
  } finally {
    for (const s of sides) await s.close();
  }
}

/** default ÷ best explicit count, per tool: the medians, the best count, and the per-round ratio to that count */
interface DefaultRatio { tool: string; def: number; best: number; bestThreads: number; paired: PairedRatio | undefined }
function defaultRatios(f: Map<string, Figures>): DefaultRatio[] {
  const out: DefaultRatio[] = [];
  for (const tool of TOOLS) {
    const def = f.get(`${tool}: defaults`);
    if (!def) continue;
    const [bestThreads, best] = threadCounts.map((t) => [t, f.get(`${tool}: ${t}t`)!.gen] as const).sort((a, b) => b[1].median - a[1].median)[0]!;
    out.push({ tool, def: def.gen.median, best: best.median, bestThreads, paired: pairedRatio(def.gen.runs, best.runs) });
  }
  return out;
}

/**
 * `n` clients sent their requests at once: the aggregate rate, and how long they waited for their first
 * token (the mean of the `n` clients, and the last client's), which is what a server's way of taking in
 * several prompts at once changes most.
 */
async function concurrent(side: Side, n: number): Promise<{ aggregate: number; tokens: number; ttftMean: number; ttftLast: number }> {
  const t0 = hr();
  const rs = await Promise.all(Array.from({ length: n }, () => side.one(promptOf(promptNo++))));
  const wall = ms(t0, hr()) / 1000;
  const total = rs.reduce((a, r) => a + r.n, 0);
  const ttfts = rs.map((r) => r.ttft);
  return { aggregate: total / wall, tokens: total, ttftMean: ttfts.reduce((a, t) => a + t, 0) / n, ttftLast: Math.max(...ttfts) };
}

const sections: string[] = [];
const summary: string[][] = [];
/** the machine's load average (1, 5, 15 min) as it was: other processes' work makes every figure noisier */
const loadAverage = () => loadavg().map((x) => x.toFixed(1)).join(" ");
const loadAtStart = loadAverage();
try {
  process.stderr.write(`inference: prompt of ${nPrompt} tokens, ${tokens} generated, ${reps} runs per side\n`);
  const perThreads = new Map<number, Map<string, Figures>>();
  for (const threads of parts.has("threads") ? threadCounts : []) {
    process.stderr.write(`threads ${threads}:\n`);
    const mf = await mfSide(threads, 1);
    const sides = [mf, notStreamed(mf), await directSide(threads), ...(withLlamaCpp ? [await llamaServerSide(threads, 1), llamaBenchSide(threads)] : [])];
    try {
      perThreads.set(threads, await compare(sides, reps));
    } finally {
      for (const s of sides) await s.close();
    }
  }
  const lb = withLlamaCpp && parts.has("threads") ? (process.stderr.write("llama-bench…\n"), llamaBench(threadCounts, nPrompt)) : threadCounts.map((t) => ({ threads: t, pp: NaN, tg: NaN }));

  for (const [threads, f] of perThreads) {
    const direct = f.get("node-llama-cpp direct")!;
    const server = f.get("llama-server /completion") ?? { gen: stat([NaN]), ttft: stat([NaN]) };
    const bench = lb.find((x) => x.threads === threads)!;
    const rows = [...f].map(([name, x]) => [
      name,
      // a side without a prompt of ours (llama-bench) has no TTFT
      Number.isNaN(x.ttft.median) ? "" : fmtStat(x.ttft, 0),
      Number.isNaN(x.pp.median) ? "" : fmtStat(x.pp),
      fmtStat(x.gen),
      ratio(x.gen.median, direct.gen.median),
      ...(withLlamaCpp ? [ratio(x.gen.median, server.gen.median)] : []),
      [...x.counts].join("/"),
    ]);
    if (withLlamaCpp) {
      rows.push(["llama-bench (engine alone, avg of 3)", "", bench.pp.toFixed(1), bench.tg.toFixed(1), ratio(bench.tg, direct.gen.median), ratio(bench.tg, server.gen.median), String(tokens)]);
    }
    sections.push(
      `### ${threads} thread${threads > 1 ? "s" : ""}\n\n` +
        table(["side", "TTFT ms", "prompt eval tok/s", "generation tok/s", "gen ÷ direct", ...(withLlamaCpp ? ["gen ÷ llama-server"] : []), "tokens generated"], rows),
    );
    const mf = f.get("mf serve over HTTP")!;
    const whole = f.get(NOT_STREAMED)!;
    summary.push(
      [`mf serve gen tok/s ÷ node-llama-cpp direct, ${threads}t`, mf.gen.median.toFixed(1), direct.gen.median.toFixed(1), ratio(mf.gen.median, direct.gen.median), fmtPaired(pairedRatio(mf.gen.runs, direct.gen.runs)), "≥ 0.97×"],
      [`mf serve TTFT − direct TTFT, ${threads}t`, `${mf.ttft.median.toFixed(0)} ms`, `${direct.ttft.median.toFixed(0)} ms`, `${(mf.ttft.median - direct.ttft.median).toFixed(1)} ms`, "", "≤ 10 ms"],
      [`mf serve not streamed (its own timing) gen tok/s ÷ node-llama-cpp direct, ${threads}t`, whole.gen.median.toFixed(1), direct.gen.median.toFixed(1), ratio(whole.gen.median, direct.gen.median), fmtPaired(pairedRatio(whole.gen.runs, direct.gen.runs)), "≥ 0.97×"],
      ...(withLlamaCpp ? [[`mf serve gen tok/s ÷ llama-server, ${threads}t`, mf.gen.median.toFixed(1), server.gen.median.toFixed(1), ratio(mf.gen.median, server.gen.median), fmtPaired(pairedRatio(mf.gen.runs, server.gen.runs)), "≥ 1.0×"]] : []),
    );
    // the issue's stretch target, at 2 threads: against llama-bench on an empty context (as it measured, in a
    // run of its own), and generating after the prompt, as every server side does, in the rotation
    const lbRot = f.get(LLAMA_BENCH_IN_ROTATION);
    if (lbRot && threads === 2) {
      summary.push(
        [`stretch: mf serve gen tok/s ÷ llama-bench tg${tokens}, 2t (its own run, minutes apart)`, mf.gen.median.toFixed(1), bench.tg.toFixed(1), ratio(mf.gen.median, bench.tg), "", "≥ 0.9×"],
        [`the same ÷ llama-bench tg${tokens} after the ${nPrompt}-token prompt (-d ${nPrompt}), in the rotation, 2t`, mf.gen.median.toFixed(1), lbRot.gen.median.toFixed(1), ratio(mf.gen.median, lbRot.gen.median), fmtPaired(pairedRatio(mf.gen.runs, lbRot.gen.runs)), "≥ 0.9×"],
      );
    }
  }
  if (threadCounts.length > 1 && parts.has("threads")) {
    const [a, b] = [threadCounts[0]!, threadCounts.at(-1)!];
    const rows = [...perThreads.get(a)!.keys()].map((name) => {
      const x = perThreads.get(a)!.get(name)!.gen.median;
      const y = perThreads.get(b)!.get(name)!.gen.median;
      return [name, y.toFixed(1), x.toFixed(1), ratio(x, y)];
    });
    const la = lb.find((x) => x.threads === a)!.tg;
    const lbb = lb.find((x) => x.threads === b)!.tg;
    if (withLlamaCpp) rows.push(["llama-bench", lbb.toFixed(1), la.toFixed(1), ratio(la, lbb)]);
    sections.push(`### generation tok/s, ${b} vs ${a} threads\n\n` + table(["side", `${b}t`, `${a}t`, `${a}t ÷ ${b}t`], rows));
  }

  // 1 vs `clients` concurrent clients, at the first thread count
  if (clients > 1 && parts.has("concurrency")) {
    const threads = threadCounts[0]!;
    process.stderr.write(`concurrency: 1 vs ${clients} clients at ${threads} threads:\n`);
    const sides = [await mfSide(threads, clients), ...(withLlamaCpp ? [await llamaServerSide(threads, clients)] : [])];
    const agg = new Map(sides.map((s) => [s.name, { one: [] as number[], many: [] as number[], ttftMean: [] as number[], ttftLast: [] as number[], tokens: new Set<number>() }]));
    try {
      for (const s of sides) await concurrent(s, clients); // warm-up
      for (let i = 0; i < concurrentReps; i++) {
        for (const s of i % 2 ? [...sides].reverse() : sides) {
          const g = agg.get(s.name)!;
          const a = await concurrent(s, 1);
          const b = await concurrent(s, clients);
          g.one.push(a.aggregate);
          g.many.push(b.aggregate);
          g.ttftMean.push(b.ttftMean);
          g.ttftLast.push(b.ttftLast);
          g.tokens.add(b.tokens);
          process.stderr.write(
            `  ${s.name}: 1 client ${a.aggregate.toFixed(1)} tok/s, ${clients} clients ${b.aggregate.toFixed(1)} tok/s (${b.tokens} tokens), ` +
              `TTFT mean ${b.ttftMean.toFixed(0)} ms, last ${b.ttftLast.toFixed(0)} ms\n`,
          );
        }
      }
    } finally {
      for (const s of sides) await s.close();
    }
    const [mfName, lsName] = sides.map((s) => s.name) as [string, string | undefined];
    const lsMany = stat(agg.get(lsName ?? "")?.many ?? [NaN]);
    const rows = [...agg].map(([name, g]) => {
      const o = stat(g.one);
      const m = stat(g.many);
      return [name, fmtStat(o), fmtStat(m), ratio(m.median, o.median), ratio(m.median, lsMany.median), fmtStat(stat(g.ttftMean), 0), fmtStat(stat(g.ttftLast), 0), [...g.tokens].join("/")];
    });
    sections.push(
      `### 1 vs ${clients} concurrent clients, ${threads} threads (aggregate generated tok/s over the wall time, prompt included; ` +
        `the ${clients} clients' time to their first token, ms: their mean, and the last one's)\n\n` +
        table(["server", "1 client", `${clients} clients`, `${clients} ÷ 1`, `${clients} clients ÷ llama-server's`, `TTFT, mean of ${clients}`, "TTFT, last client", "tokens"], rows),
    );
    const mfConc = agg.get(mfName)!;
    const mfMany = stat(mfConc.many);
    summary.push([`aggregate tok/s with ${clients} clients ÷ llama-server -np ${clients}`, mfMany.median.toFixed(1), lsMany.median.toFixed(1), ratio(mfMany.median, lsMany.median), fmtPaired(pairedRatio(mfMany.runs, lsMany.runs)), "≥ 1.0×"]);
    const lsConc = agg.get(lsName ?? "");
    if (lsConc) {
      const [mfT, lsT] = [stat(mfConc.ttftMean), stat(lsConc.ttftMean)];
      summary.push([`mean TTFT of ${clients} clients, mf serve ÷ llama-server -np ${clients}`, `${mfT.median.toFixed(0)} ms`, `${lsT.median.toFixed(0)} ms`, ratio(mfT.median, lsT.median), fmtPaired(pairedRatio(mfT.runs, lsT.runs)), "—"]);
    }
  }

  if (parts.has("defaults")) {
    process.stderr.write(`defaults vs explicit thread counts (${threadCounts.join(", ")}), machine as it is:\n`);
    const idle = defaultRatios(await defaultsVsExplicit(false));
    process.stderr.write("the same with one CPU-bound competitor:\n");
    const busy = defaultRatios(await defaultsVsExplicit(true));
    const rows = idle.map((x) => {
      const y = busy.find((b) => b.tool === x.tool)!;
      return [x.tool, x.def.toFixed(1), `${x.best.toFixed(1)} (${x.bestThreads}t)`, ratio(x.def, x.best), y.def.toFixed(1), `${y.best.toFixed(1)} (${y.bestThreads}t)`, ratio(y.def, y.best)];
    });
    sections.push(
      `### defaults: each side as a user starts it, no thread setting, against its best explicit count (${threadCounts.join(", ")}), generation tok/s\n\n` +
        table(["side", "defaults", "best explicit", "defaults ÷ best", "defaults, 1 competitor", "best explicit, 1 competitor", "defaults ÷ best, 1 competitor"], rows),
    );
    const mfIdle = idle.find((x) => x.tool === "mf serve")!;
    const mfBusy = busy.find((x) => x.tool === "mf serve")!;
    summary.unshift(
      ["mf serve default settings gen tok/s ÷ best explicit thread count", mfIdle.def.toFixed(1), `${mfIdle.best.toFixed(1)} (${mfIdle.bestThreads}t)`, ratio(mfIdle.def, mfIdle.best), fmtPaired(mfIdle.paired), "≥ 0.9×"],
      ["the same with one CPU-bound competitor", mfBusy.def.toFixed(1), `${mfBusy.best.toFixed(1)} (${mfBusy.bestThreads}t)`, ratio(mfBusy.def, mfBusy.best), fmtPaired(mfBusy.paired), "≥ 0.9×"],
    );
  }

  if (parts.has("ahead")) {
    if (engine.kind !== "built") throw new Error("--parts=ahead compares the built engine's decode ahead: run it with --engine=native");
    const rows: string[][] = [];
    for (const threads of threadCounts) {
      process.stderr.write(`ahead: mf serve with and without the decode ahead at ${threads} thread${threads > 1 ? "s" : ""}:\n`);
      const sides = [
        await mfSide(threads, 1),
        named(await mfSide(threads, 1, { NODE_LLAMA_CPP_DECODE_AHEAD: "off" }), "mf serve, NODE_LLAMA_CPP_DECODE_AHEAD=off"),
        ...(withLlamaCpp ? [await llamaServerSide(threads, 1)] : []),
      ];
      let f: Map<string, Figures>;
      try {
        f = await compare(sides, reps);
      } finally {
        for (const s of sides) await s.close();
      }
      const [on, off, ls] = sides.map((s) => f.get(s.name)?.gen);
      for (const [name, g] of [...f].map(([n, x]) => [n, x.gen] as const)) {
        rows.push([name, String(threads), fmtStat(g), ratio(g.median, off!.median), ls ? ratio(g.median, ls.median) : "—"]);
      }
      summary.push([`mf serve gen tok/s ÷ the same without the decode ahead, ${threads}t`, on!.median.toFixed(1), off!.median.toFixed(1), ratio(on!.median, off!.median), fmtPaired(pairedRatio(on!.runs, off!.runs)), "—"]);
      if (ls) summary.push([`mf serve gen tok/s ÷ llama-server, ${threads}t`, on!.median.toFixed(1), ls.median.toFixed(1), ratio(on!.median, ls.median), fmtPaired(pairedRatio(on!.runs, ls.runs)), "≥ 1.0×"]);
    }
    sections.push(
      `### the decode ahead: mf serve with and without it (NODE_LLAMA_CPP_DECODE_AHEAD=off), beside llama-server, generation tok/s, ${reps} runs a side in rotation; ` +
        `mf's step loop asks for it while the decode's threads are fewer than the CPUs, or while one answer alone generates\n\n` +
        table(["side", "threads", "generation tok/s", "÷ without the decode ahead", "÷ llama-server"], rows),
    );
  }

  if (parts.has("cpu")) {
    process.stderr.write("cpu: CPU time per generated token, by thread\n");
    const rows: string[][] = [];
    for (const threads of threadCounts) {
      for (const make of [() => mfSide(threads, 1), ...(withLlamaCpp ? [() => llamaServerSide(threads, 1)] : [])]) {
        const side = await make();
        try {
          rows.push(await cpuPerToken(side, threads, reps));
        } finally {
          await side.close();
        }
      }
    }
    sections.push(
      `### CPU time per generated token (ms, the prompt's share included), ${reps} runs of ${tokens} tokens one after the other, after a warm-up, read from /proc: ` +
        `the decode's threads (the server's busiest, as many as it decodes with), the server's JavaScript thread (mf serve), all of the server's threads but the decode's, ` +
        `and the client reading the stream (this process); wall: the runs' time per generated token\n\n` +
        table(["server", "threads", "wall", "decode's threads", "JavaScript thread", "server's other threads", "client"], rows),
    );
  }

  if (parts.has("draft")) {
    process.stderr.write(`draft: speculative decoding at ${threadCounts[0]} threads:\n`);
    const draft = await draftMeasurement({
      reps, tokens, threads: threadCounts[0]!, predicts: draftPredicts, engineDir: engine.kind === "built" ? engineDir : join(CACHE, "no-engine"), engineNote: engine.description, llama,
    });
    // the draft part's rows come without a per-round ratio (its phases measure one side at a time)
    summary.push(...draft.rows.map((r) => [...r.slice(0, 4), "", ...r.slice(4)]));
    sections.push(draft.section);
  }

  // a run of some parts has its own section, beside the full run's (which it would otherwise replace)
  const partial = [...parts].join(",") !== "threads,concurrency,defaults,draft" || !withLlamaCpp;
  const sectionName = partial ? `inference-${[...parts].join("-")}${withLlamaCpp ? "" : "-no-llama-cpp"}` : "inference";
  report(
    sectionName,
    `## inference${partial ? ` (parts: ${[...parts].join(", ")}${withLlamaCpp ? "" : "; llama-server and llama-bench not run"})` : ""}\n\n` +
      `Model: generated BENCH_200M (${BENCH_200M.embeddingLength}-wide, ${BENCH_200M.blockCount} layers, F16), CPU only; prompt ${nPrompt} tokens ` +
      `(a different first word each run, so nothing is served from a prompt cache), ${tokens} tokens generated, seed ${SAMPLING.seed}, ` +
      `temperature ${SAMPLING.temperature}, top_k ${SAMPLING.topK}, top_p ${SAMPLING.topP}, min_p 0, no repeat penalty; ${reps} runs per side ` +
      `in rotating order, medians (min–max). Client-side times: TTFT = request sent → first token; prompt eval = prompt tokens ÷ TTFT; ` +
      `generation = tokens after the first ÷ first-to-last time. llama-server and llama-bench are built from node-llama-cpp's own llama.cpp source. ` +
      `Flash attention "auto" (on, on this CPU) on every side, as llama-server, llama-bench and mf serve default to it; node-llama-cpp direct is given it, but in the defaults part (its own default: off). ` +
      `Engine: ${engineNote}. The model's vocabulary detokenizes only to ASCII (asciiOnly), so llama-server never aborts a stream on text that is not UTF-8. ` +
      `Load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAverage()} at the end.\n\n` +
      (summary.length
        ? "Ratio: of the two medians; per round: the median of the ratios of the two sides' runs in the same round (the same prompt, " +
          "seconds apart, where the medians mix runs minutes apart), with a distribution-free 95% confidence interval for it (order statistics; " +
          "with 8 rounds or fewer, the whole range): where the interval holds 1.0, this run does not tell the two sides apart.\n\n" +
          table(["question", "mf", "peer", "ratio", "per round (95% CI)", "target"], summary) + "\n\n"
        : "") +
      sections.join("\n\n") +
      `\n\nCommand: \`npm run bench -- inference --reps ${reps} --tokens ${tokens} --threads ${threadCounts.join(",")}${parts.has("concurrency") ? ` --clients ${clients}${concurrentReps === 3 ? "" : ` --concurrent-reps ${concurrentReps}`}` : ""} --engine=${values.engine}` +
      `${values.parts === "threads,concurrency,defaults,draft" ? "" : ` --parts=${values.parts}`}${values["cut-s"] === "20" ? "" : ` --cut-s ${values["cut-s"]}`}` +
      `${withLlamaCpp ? "" : " --no-llama-cpp"}${values["draft-predict"] === "4,15" ? "" : ` --draft-predict ${values["draft-predict"]}`}\``,
  );
} finally {
  await model.dispose();
  await llama.dispose();
}
