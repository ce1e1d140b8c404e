/**
 * The persistent threads of the engine `mf engine build` makes (mf's patch to node-llama-cpp's addon):
 * a context gets its threadpool's workers and its own thread (named llama-context) when it is created;
 * the same threads run every decode and sampling, none of them on node's libuv pool, and they end with
 * the context. Without the patch's threads (NODE_LLAMA_CPP_THREADPOOL_POLL=off and
 * NODE_LLAMA_CPP_CONTEXT_THREAD=off, which is node-llama-cpp as published) no thread outlives a decode:
 * ggml creates and joins its workers inside each one, and libuv's pool runs the decodes.
 *
 * Runs only on a built engine (MF_ENGINE_DIR, or ~/.mf/engine; `.ci/run` builds one); otherwise it says
 * that it could not run. Threads are read from /proc/self/task (Linux).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildFromModelfile } from "../../builder/build.js";
import { resolveConfig } from "../../core/config.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { MF_BIN, ROOT } from "../helpers/mf.js";
import { withTmp } from "../helpers/tmp.js";
import type { EngineChoice } from "../../runtime/engine/binding.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel } from "../../runtime/engine/types.js";
import { CHAT_MODELFILE, cpuEngine, tinyGguf } from "./harness.js";

const THREADS = 2;
const DECODES = 100;

function tasks(pid: number | "self" = "self"): Set<number> {
  return new Set(readdirSync(`/proc/${pid}/task`).map(Number));
}

/** utime + stime of a thread, in clock ticks (0 once it has ended) */
function cpuTicks(tid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  } catch {
    return 0;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** a thread's name, as `top -H` shows it */
const threadName = (tid: number) => readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();

/**
 * Node's libuv pool threads, started by a file read before any context exists (a thread that one of them
 * starts later, such as a ggml worker created while a context loads, inherits their name).
 */
async function libuvPool(): Promise<Set<number>> {
  await readFile("/proc/self/stat");
  return new Set([...tasks()].filter((t) => threadName(t) === "libuv-worker"));
}

/** the CPU ticks each of `pool`'s threads has used so far */
const libuvTicks = (pool: Set<number>) => new Map([...pool].filter((t) => tasks().has(t)).map((t) => [t, cpuTicks(t)]));

/** how many ticks libuv's pool threads used since `before` */
const libuvTicksSince = (before: Map<number, number>) => [...before].reduce((sum, [t, ticks]) => sum + cpuTicks(t) - ticks, 0);

const minus = (a: Set<number>, b: Set<number>) => [...a].filter((x) => !b.has(x));

/** `n` decodes of one token each: the prompt's, then one per generated token. */
async function decode(m: EngineModel, n: number): Promise<void> {
  let count = 1;
  for await (const _ of m.evaluate(m.tokenize("once upon a time"), { sampling: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0, seed: 3 } })) {
    if (++count > n) break;
  }
}

const engineDir = resolveConfig().engineDir;
const choice: EngineChoice | undefined = existsSync("/proc/self/task") ? await cpuEngine() : undefined;

describe("the built engine's persistent threadpool", { concurrency: false }, () => {
  if (choice?.kind !== "built") {
    const why = choice ? choice.description : "no /proc/self/task on this system";
    it("keeps a context's worker threads across 100 decodes", { skip: `no built engine for this machine (${why}): the persistent-pool check could not run` }, () => {});
    return;
  }
  let engine: Engine;
  let modelPath: string;
  let pool: Set<number>;
  before(async () => {
    pool = await libuvPool();
    modelPath = await tinyGguf();
    engine = createLlamaEngine({ engine: choice, threads: THREADS });
  });
  after(async () => {
    delete process.env.NODE_LLAMA_CPP_THREADPOOL_POLL;
    delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
    await engine?.dispose();
  });
  const load = () => engine.load({ modelPath, adapters: [], contextSize: 256, slots: 1, threads: THREADS });

  it("without the patch's threads (node-llama-cpp as published) no thread outlives a decode, and libuv's pool runs the decodes", async () => {
    process.env.NODE_LLAMA_CPP_THREADPOOL_POLL = "off";
    process.env.NODE_LLAMA_CPP_CONTEXT_THREAD = "off";
    try {
      const warm = await load();
      await decode(warm, 2); // node's own threads (libuv's pool) start on first use
      const before = tasks();
      const m = await load();
      const libuv = libuvTicks(pool);
      await decode(m, DECODES);
      assert.ok(libuvTicksSince(libuv) > 0, "libuv's pool threads computed the decodes");
      assert.deepEqual(minus(tasks(), before), [], "no thread was left running by the context or its decodes");
      await m.dispose();
      await warm.dispose();
    } finally {
      delete process.env.NODE_LLAMA_CPP_THREADPOOL_POLL;
      delete process.env.NODE_LLAMA_CPP_CONTEXT_THREAD;
    }
  });

  it(`a context gets ${THREADS - 1} pool worker(s) and its own thread when created; the same ones run all ${DECODES} decodes and samplings, none on libuv's pool, and end with it`, async () => {
    const warm = await load();
    await decode(warm, 2); // node's own threads (libuv's pool) start on first use
    const before = tasks();
    const m = await load();
    const created = minus(tasks(), before);
    const own = created.filter((t) => threadName(t) === "llama-context");
    const workers = created.filter((t) => !own.includes(t));
    assert.equal(own.length, 1, `one thread named llama-context runs the context's decodes (new threads: ${created.map(threadName).join(", ")})`);
    assert.equal(workers.length, THREADS - 1, `the pool's workers (threads ${THREADS}, the context's own thread being the other)`);
    const ticks = workers.map(cpuTicks);
    const ownTicks = cpuTicks(own[0]!);
    const libuv = libuvTicks(pool);
    const atStart = tasks();
    await decode(m, DECODES);
    assert.deepEqual([...tasks()].sort(), [...atStart].sort(), `the thread ids are unchanged across ${DECODES} decodes`);
    assert.ok(workers.every((w, i) => cpuTicks(w) > ticks[i]!), "the pool's workers ran during the decodes");
    assert.ok(cpuTicks(own[0]!) > ownTicks, "the context's own thread ran the decodes");
    assert.equal(libuvTicksSince(libuv), 0, "libuv's pool threads used no CPU time during the decodes");
    await m.dispose();
    assert.deepEqual(created.filter((w) => tasks().has(w)), [], "the context's threads end with it");
    await warm.dispose();
  });

  it("mf serve runs it: its log says so, it answers, and its thread ids stay the same from one request to the next", async () => {
    await withTmp("serve-engine", async (dir) => {
      const ctx = join(dir, "ctx");
      mkdirSync(ctx);
      copyFileSync(modelPath, join(ctx, "tiny.gguf"));
      writeFileSync(join(ctx, "Modelfile"), CHAT_MODELFILE);
      await buildFromModelfile(join(ctx, "Modelfile"), { store: new LocalStore(join(dir, "models")), tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
      const server = spawn(process.execPath, [MF_BIN, "serve", "--no-gpu", "--threads", String(THREADS)], {
        cwd: ROOT,
        env: { ...process.env, HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0", MF_ENGINE_DIR: engineDir },
      });
      let out = "";
      try {
        const host = await new Promise<string>((res, rej) => {
          server.stdout.on("data", (d) => {
            out += d;
            const m = /listening on http:\/\/(127\.0\.0\.1:\d+)/.exec(out);
            if (m) res(m[1]!);
          });
          server.on("exit", (code) => rej(new Error(`mf serve exited ${code}: ${out}`)));
        });
        const line = out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { engine?: string; msg: string }).find((l) => l.engine);
        assert.equal(line?.engine, "built", out);
        assert.ok(line.msg.startsWith(`engine: built here by \`mf engine build\` (cpu, `) && line.msg.includes(choice.dir!), line.msg);
        const generate = async () => {
          const r = await fetch(`http://${host}/api/generate`, { method: "POST", body: JSON.stringify({ model: "chat", prompt: "hello", stream: false, options: { num_predict: 20, seed: 1 } }) });
          assert.equal(r.status, 200);
          assert.equal(((await r.json()) as { done: boolean }).done, true);
        };
        await generate();
        const loaded = tasks(server.pid!);
        await generate();
        await generate();
        assert.deepEqual([...tasks(server.pid!)].sort(), [...loaded].sort());
      } finally {
        const gone = new Promise((r) => server.once("exit", r));
        server.kill("SIGTERM");
        await gone;
      }
    });
  });
});
