/**
 * Thread counts on the real engine: the precedence request `num_thread` (and the image's PARAMETER) >
 * `mf serve --threads` > MF_THREADS > the policy, the clamp to the usable CPUs and its log line, and the
 * count shown by `/api/ps`, `mf ps --json` and the load log line. First in process (real engine, real
 * HTTP server, a stand-in machine of 8 CPUs on 4 SMT cores so that every level has its own number), then
 * with the real `mf serve` and `mf ps` binaries on this machine.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { getLlama } from "node-llama-cpp";
import type { LocalStore } from "../../core/store.js";
import { readCpuFacts } from "../../runtime/engine/cpu.js";
import { type LlamaEngineOptions, createLlamaEngine } from "../../runtime/engine/llama.js";
import { type CpuFacts, TRIAL_BLOCK, TRIAL_BLOCKS, TRIAL_MARGIN, planThreads } from "../../runtime/engine/threads.js";
import { Scheduler } from "../../runtime/scheduler.js";
import { createRuntimeServer } from "../../runtime/server/app.js";
import { type ServingMf, mf, serveMf } from "../helpers/mf.js";
import { buildTinyImages, post } from "./harness.js";

let dir: string;
let store: LocalStore;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-threads-"));
  store = await buildTinyImages(dir, {
    plain: "FROM ./tiny.gguf\nPARAMETER num_ctx 256\n",
    pinned: "FROM ./tiny.gguf\nPARAMETER num_ctx 256\nPARAMETER num_thread 2\n",
  });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface PsEntry {
  name: string;
  threads: number;
  context_length: number;
}

async function ps(base: string): Promise<PsEntry[]> {
  const r = await fetch(base + "/api/ps");
  assert.equal(r.status, 200);
  return ((await r.json()) as { models: PsEntry[] }).models;
}

/** Loads `model` (an empty generate) with these options, then the thread count /api/ps shows for it. */
async function threadsOf(base: string, model: string, options: Record<string, unknown> = {}): Promise<number> {
  const r = await post(base, "/api/generate", { model, options });
  assert.equal(r.status, 200, r.text);
  const m = (await ps(base)).find((x) => x.name === `${model}:latest`);
  assert.ok(m, `${model} is loaded`);
  return m.threads;
}

/**
 * The real engine and HTTP server in this process, on `opts.cpu`, without the load meter; the engine's
 * and the scheduler's words go to `logs`.
 */
async function inProcess(opts: Pick<LlamaEngineOptions, "threads" | "cpu" | "measureThreads">) {
  const logs: string[] = [];
  const engine = createLlamaEngine({ ...opts, loadIntervalMs: 0, notice: (_l, m) => logs.push(m) });
  const scheduler = new Scheduler({ engine, maxLoaded: 1, numParallel: 1, maxQueue: 8, defaultKeepAliveMs: 300_000, log: (m) => logs.push(m) });
  const app = createRuntimeServer({ store, engine, scheduler, config: { host: "127.0.0.1:0", origins: [] }, homeDir: dir, threads: opts.threads });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return {
    base,
    logs,
    close: async () => {
      await app.close();
      await engine.dispose();
    },
  };
}

describe("in process, on a stand-in machine of 8 CPUs (4 cores with 2 threads each)", () => {
  const smt8: CpuFacts = { online: 8, allowed: [0, 1, 2, 3, 4, 5, 6, 7], cores: new Map([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [i, `core${i % 4}`])), mathCores: 4 };

  const server = (threads: number | undefined) => inProcess({ threads, cpu: smt8, measureThreads: false });

  test("no setting anywhere: the policy's physical cores (4), said once in the log", async () => {
    const s = await server(undefined);
    try {
      assert.equal(await threadsOf(s.base, "plain"), 4);
      assert.ok(s.logs.includes("threads: 4 per model by default (8 CPUs allowed, 4 physical cores), at most 8"), s.logs.join("\n"));
      assert.ok(s.logs.some((l) => /^loaded plain:latest in [\d.]+ s \(ctx 256 × 1, 4 threads, the default; flash attention auto\)$/.test(l)), s.logs.join("\n"));
    } finally {
      await s.close();
    }
  });

  test("the server's count (--threads or MF_THREADS) beats the policy; a request's num_thread beats both", async () => {
    const s = await server(5);
    try {
      assert.equal(await threadsOf(s.base, "plain"), 5);
      assert.equal(await threadsOf(s.base, "plain", { num_thread: 3 }), 3);
      assert.ok(s.logs.some((l) => /^loaded plain:latest in [\d.]+ s \(ctx 256 × 1, 3 threads; flash attention auto\)$/.test(l)), s.logs.join("\n"));
      // the image's PARAMETER num_thread is one of the request's options (Ollama's order): it beats the server's count
      assert.equal(await threadsOf(s.base, "pinned"), 2);
      assert.equal(await threadsOf(s.base, "pinned", { num_thread: 6 }), 6);
    } finally {
      await s.close();
    }
  });

  test("a count above the usable CPUs is clamped to them, and the load line says so", async () => {
    const s = await server(64);
    try {
      assert.equal(await threadsOf(s.base, "plain"), 8);
      assert.equal(await threadsOf(s.base, "plain", { num_thread: 12 }), 8);
      assert.ok(s.logs.some((l) => /^loaded plain:latest in [\d.]+ s \(ctx 256 × 1, 8 threads: 12 asked for, clamped to the CPUs this process may use; flash attention auto\)$/.test(l)), s.logs.join("\n"));
    } finally {
      await s.close();
    }
  });
});

describe("in process, node-llama-cpp's prebuilt binary (a fresh clone) on a stand-in machine of 2 cores", () => {
  // the policy gives 2 threads wherever this runs; the load meter is off (its readings would follow the
  // other test files running beside this one), so every time between tokens counts for the trial
  const two: CpuFacts = { online: 2, allowed: [0, 1], cores: new Map([[0, "core0"], [1, "core1"]]), mathCores: 2 };

  test("the first answers measure the default count against 1 thread, keep the faster, and say so; a reload keeps it", async (t) => {
    const { base, logs, close } = await inProcess({ cpu: two });
    const measured = /^threads: (\d) for (\S+) by default, measured over its first answers: (.*) a token \(this engine starts a decode's threads anew each time; `mf engine build` gives it a persistent pool\)$/;
    try {
      // loaded at the policy's count, measured from the first answer on
      assert.equal(await threadsOf(base, "plain"), 2);
      assert.ok(logs.some((l) => /^loaded plain:latest in [\d.]+ s \(ctx 256 × 1, 2 threads, the default; flash attention auto\)$/.test(l)), logs.join("\n"));
      assert.equal(logs.filter((l) => /^threads: measuring 2 threads against 1 over the first answers of \S+\/sha256-[0-9a-f]{64}$/.test(l)).length, 1, logs.join("\n"));
      // answers until the trial has decided: at most TRIAL_BLOCKS blocks of TRIAL_BLOCK tokens
      let tokens = 0;
      for (let i = 0; i < 20 && !logs.some((l) => measured.test(l)); i++) {
        const r = await post(base, "/api/generate", { model: "plain", prompt: `Story ${i}. Once upon a time`, raw: true, stream: false, options: { num_predict: 64, temperature: 0 } });
        assert.equal(r.status, 200, r.text);
        tokens += (r.json as { eval_count: number }).eval_count;
      }
      const line = logs.map((l) => measured.exec(l)).find((m) => m);
      assert.ok(line, logs.join("\n"));
      t.diagnostic(`${line[0]} (after ${tokens} tokens)`);
      assert.match(line[2]!, new RegExp(`^${join(dir, "models", "blobs")}/sha256-[0-9a-f]{64}$`), line[0]);
      assert.ok(tokens <= TRIAL_BLOCKS * TRIAL_BLOCK + 64, `decided within its blocks (${tokens} tokens)`);
      const figures = new Map([...line[3]!.matchAll(/(\d+) threads? ([\d.]+) ms/g)].map((m) => [Number(m[1]), Number(m[2])]));
      assert.deepEqual([...figures.keys()].sort(), [1, 2], line[0]);
      // 1 thread wins only when it is TRIAL_MARGIN faster: the more threads also halve a prompt's time
      const chosen = Number(line[1]);
      assert.equal(chosen, figures.get(1)! * TRIAL_MARGIN < figures.get(2)! ? 1 : 2, line[0]);
      // /api/ps shows it from then on
      assert.equal((await ps(base)).find((m) => m.name === "plain:latest")?.threads, chosen);
      // unloaded and loaded again: loaded at the measured count, not measured again
      assert.equal((await post(base, "/api/generate", { model: "plain", keep_alive: 0 })).status, 200);
      for (let i = 0; i < 100 && (await ps(base)).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(await threadsOf(base, "plain"), chosen);
      const loads = logs.map((l) => /^loaded plain:latest in [\d.]+ s \(ctx 256 × 1, (\d) threads?, the default; flash attention auto\)$/.exec(l)?.[1]).filter((n) => n);
      assert.deepEqual(loads.map(Number), [2, chosen]);
      assert.equal(logs.filter((l) => l.startsWith("threads: measuring")).length, 1, logs.join("\n"));
    } finally {
      await close();
    }
  });
});

describe("the real mf serve and mf ps on this machine", () => {
  /** this machine's policy, as mf serve computes it (with llama.cpp's count of math cores) */
  let usable: number;
  let policy: number;
  const servers: ServingMf[] = [];

  before(async () => {
    const llama = await getLlama({ gpu: false, build: "never" });
    const plan = planThreads({ ...readCpuFacts(), mathCores: llama.cpuMathCores });
    await llama.dispose();
    usable = plan.usable;
    policy = plan.threads;
  });

  after(async () => {
    for (const s of servers) await s.stop();
  });

  function env(extra: Record<string, string>): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0", ...extra };
    delete e.MF_DEBUG;
    if (!("MF_THREADS" in extra)) delete e.MF_THREADS;
    return e;
  }

  async function serve(args: string[], extra: Record<string, string> = {}): Promise<ServingMf> {
    const s = await serveMf(["--no-gpu", ...args], env(extra));
    servers.push(s);
    return s;
  }

  async function mfPs(base: string): Promise<PsEntry[]> {
    const r = await mf(["ps", "--json"], { env: { HOME: dir, MF_HOST: base.replace("http://", "") } });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as PsEntry[];
  }

  const at = (n: number) => Math.min(n, usable);

  /** The server's output once it has a line matching `re` (its log reaches the pipe after the HTTP answer). */
  async function logged(s: ServingMf, re: RegExp): Promise<string> {
    for (let i = 0; i < 100 && !re.test(s.output()); i++) await new Promise((r) => setTimeout(r, 50));
    return s.output();
  }

  /** The engine `s` runs: the one mf engine build made (a persistent pool), or node-llama-cpp's prebuilt binary. */
  async function engineOf(s: ServingMf): Promise<"built" | "prebuilt"> {
    const out = await logged(s, /"msg":"loaded plain:latest in /);
    const engine = /"engine":"(built|prebuilt)"/.exec(out)?.[1];
    assert.ok(engine === "built" || engine === "prebuilt", out);
    return engine;
  }

  const blob = () => `${join(dir, "models", "blobs")}/sha256-[0-9a-f]{64}`;
  const measuring = () => new RegExp(`"msg":"threads: measuring ${policy} threads against 1 over the first answers of ${blob()}"`);
  const measured = () =>
    new RegExp(`"msg":"threads: (\\d+) for ${blob()} by default, measured over its first answers: ([^"]*) a token \\(this engine starts a decode's threads anew each time; \`mf engine build\` gives it a persistent pool\\)"`);

  /**
   * The count a default-count model got at load: the policy's. On an engine that starts a decode's threads
   * anew each time (node-llama-cpp's prebuilt binary), mf then measures it against 1 thread over the
   * model's first answers, and says so.
   */
  async function defaultOf(s: ServingMf): Promise<number> {
    const engine = await engineOf(s);
    if (engine === "built" || policy === 1) assert.doesNotMatch(s.output(), measuring(), "a persistent pool (or one thread) needs no measurement");
    else assert.match(await logged(s, measuring()), measuring());
    return policy;
  }

  test("--threads beats MF_THREADS; a request's num_thread beats --threads; mf ps --json shows each", async () => {
    const s = await serve(["--threads", "2"], { MF_THREADS: "1" });
    assert.equal(await threadsOf(s.base, "plain"), at(2));
    assert.deepEqual((await mfPs(s.base)).map((m) => [m.name, m.threads]), [["plain:latest", at(2)]]);
    assert.equal(await threadsOf(s.base, "plain", { num_thread: 1 }), 1);
    assert.deepEqual((await mfPs(s.base)).map((m) => [m.name, m.threads]), [["plain:latest", 1]]);
  });

  test("MF_THREADS beats the policy; --threads 0 asks for the policy whatever MF_THREADS says", async () => {
    const s = await serve([], { MF_THREADS: "1" });
    assert.equal(await threadsOf(s.base, "plain"), 1);
    const t = await serve(["--threads", "0"], { MF_THREADS: "1" });
    assert.equal(await threadsOf(t.base, "plain"), await defaultOf(t));
  });

  test("no setting: the policy, logged at the first load; a count above the usable CPUs is clamped and logged", async () => {
    const s = await serve([]);
    const got = await threadsOf(s.base, "plain");
    assert.equal(got, await defaultOf(s));
    const policyLine = new RegExp(`"msg":"threads: ${policy} per model by default \\(.*\\), at most ${usable}"`);
    assert.match(await logged(s, policyLine), policyLine);
    const loadLine = new RegExp(`"msg":"loaded plain:latest in [\\d.]+ s \\(ctx 256 × 1, ${got} threads?, the default; flash attention auto\\)"`);
    assert.match(await logged(s, loadLine), loadLine);
    assert.equal(await threadsOf(s.base, "plain", { num_thread: 64 }), usable);
    const clampLine = new RegExp(`"msg":"loaded plain:latest in [\\d.]+ s \\(ctx 256 × 1, ${usable} threads?: 64 asked for, clamped to the CPUs this process may use; flash attention auto\\)"`);
    assert.match(await logged(s, clampLine), clampLine);
  });

  test("--threads must be a whole number", async () => {
    const r = await mf(["serve", "--threads", "lots"], { env: { HOME: dir, MF_HOST: "127.0.0.1:0" } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^mf: --threads takes a whole number of threads \(0: the default\)\n/);
  });
});
