/**
 * The persistent threadpool of the engine `mf engine build` makes (mf's patch to node-llama-cpp's addon):
 * a context gets its worker threads when it is created, the same threads run every decode, and they end
 * with the context. Without the pool (NODE_LLAMA_CPP_THREADPOOL_POLL=off, which is node-llama-cpp as
 * published) no worker outlives a decode: ggml creates and joins them inside each one.
 *
 * Runs only on a built engine (MF_ENGINE_DIR, or ~/.mf/engine; `.ci/run` builds one); otherwise it says
 * that it could not run. Threads are read from /proc/self/task (Linux).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { resolveConfig } from "../../core/config.js";
import { chooseEngine, type EngineChoice } from "../../runtime/engine/binding.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel } from "../../runtime/engine/types.js";
import { tinyGguf } from "./harness.js";

const THREADS = 2;
const DECODES = 100;

function tasks(): Set<number> {
  return new Set(readdirSync("/proc/self/task").map(Number));
}

/** utime + stime of a thread, in clock ticks */
function cpuTicks(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

const minus = (a: Set<number>, b: Set<number>) => [...a].filter((x) => !b.has(x));

/** `n` decodes of one token each: the prompt's, then one per generated token. */
async function decode(m: EngineModel, n: number): Promise<void> {
  let count = 1;
  for await (const _ of m.evaluate(m.tokenize("once upon a time"), { sampling: { temperature: 0.8, topK: 40, topP: 0.9, minP: 0, seed: 3 } })) {
    if (++count > n) break;
  }
}

const engineDir = resolveConfig().engineDir;
const choice: EngineChoice | undefined = existsSync("/proc/self/task") ? await chooseEngine({ dir: engineDir, gpu: false }) : undefined;

describe("the built engine's persistent threadpool", { concurrency: false }, () => {
  if (choice?.kind !== "built") {
    const why = choice ? choice.description : "no /proc/self/task on this system";
    it("keeps a context's worker threads across 100 decodes", { skip: `no built engine for this machine (${why}): the persistent-pool check could not run` }, () => {});
    return;
  }
  let engine: Engine;
  let modelPath: string;
  before(async () => {
    modelPath = await tinyGguf();
    engine = createLlamaEngine({ engine: choice, threads: THREADS });
  });
  after(async () => {
    delete process.env.NODE_LLAMA_CPP_THREADPOOL_POLL;
    await engine?.dispose();
  });
  const load = () => engine.load({ modelPath, adapters: [], contextSize: 256, slots: 1, threads: THREADS });

  it("without the pool (node-llama-cpp as published) no worker thread outlives a decode", async () => {
    process.env.NODE_LLAMA_CPP_THREADPOOL_POLL = "off";
    const warm = await load();
    await decode(warm, 2); // node's own threads (libuv's pool) start on first use
    const before = tasks();
    const m = await load();
    await decode(m, DECODES);
    assert.deepEqual(minus(tasks(), before), [], "no thread was left running by the context or its decodes");
    await m.dispose();
    await warm.dispose();
  });

  it(`a context gets ${THREADS - 1} worker thread(s) when created; the same ones run all ${DECODES} decodes and end with it`, async () => {
    delete process.env.NODE_LLAMA_CPP_THREADPOOL_POLL;
    const before = tasks();
    const m = await load();
    const workers = minus(tasks(), before);
    assert.equal(workers.length, THREADS - 1, `the pool's workers (threads ${THREADS}, the decoding thread being the other)`);
    const ticks = workers.map(cpuTicks);
    const atStart = tasks();
    await decode(m, DECODES);
    assert.deepEqual([...tasks()].sort(), [...atStart].sort(), `the thread ids are unchanged across ${DECODES} decodes`);
    assert.ok(workers.every((w, i) => cpuTicks(w) > ticks[i]!), "the pool's workers ran during the decodes");
    await m.dispose();
    assert.deepEqual(workers.filter((w) => tasks().has(w)), [], "the workers end with the context");
  });
});
