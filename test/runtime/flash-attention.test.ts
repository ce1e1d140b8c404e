/**
 * llama.cpp's flash attention (MF_FLASH_ATTENTION, `mf serve --flash-attention`): by default "auto", as
 * llama-server, which on the CPU turns it on. The setting must reach llama.cpp: a greedy answer's
 * log-probabilities with the default are exactly those of "on", and differ from "off"'s in their last
 * digits (the fused kernel adds in another order), while the tokens stay the same. First on the engine in
 * process (node-llama-cpp's prebuilt binary, and the built engine when there is one), then through the
 * real `mf serve`: the default, the variable, the flag over the variable, the load line, and a value it
 * does not take.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, test } from "node:test";
import type { FlashAttention } from "../../core/config.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { EngineModel } from "../../runtime/engine/types.js";
import { MF_BIN, ROOT, type ServingMf, mfEnv, serveMf } from "../helpers/mf.js";
import { buildTinyImages, post } from "./harness.js";
import { greedy, realBinaries, realModels } from "./sampling-cases.js";

const PROMPT = "Once upon a time there was";

/** a greedy answer of 12 tokens, and each token's log-probability with its 3 best alternatives' */
async function probe(m: EngineModel): Promise<{ tokens: number[]; logprobs: number[][] }> {
  const tokens: number[] = [];
  const logprobs: number[][] = [];
  const gen = m.evaluate(m.tokenize(PROMPT), { sampling: greedy, maxTokens: 12, probabilities: { top: 3, sink: (p) => logprobs.push([p.logprob, ...p.top.map((t) => t.logprob)]) } });
  for await (const t of gen) {
    tokens.push(t);
    if (tokens.length >= 12) break;
  }
  return { tokens, logprobs };
}

/** the largest difference between two lists of log-probabilities of the same shape */
function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let d = 0;
  a.forEach((row, i) => row.forEach((x, j) => (d = Math.max(d, Math.abs(x - b[i]![j]!)))));
  return d;
}

const binaries = await realBinaries();

for (const [label, choice] of binaries) {
  describe(`flash attention on ${label}`, { concurrency: false }, () => {
    const models = realModels();
    async function load(flashAttention: FlashAttention | undefined): Promise<EngineModel> {
      const engine = createLlamaEngine({ engine: choice, threads: 1, loadIntervalMs: 0, measureThreads: false, ...(flashAttention ? { flashAttention } : {}) });
      models.engines.push(engine);
      return engine.load({ modelPath: models.tiny, adapters: [], contextSize: 256, slots: 1, threads: 1 });
    }

    it("the default is auto, which the CPU runs as on; off answers the same tokens from slightly other numbers", async () => {
      const byDefault = await load(undefined);
      assert.equal(byDefault.flashAttention, "auto");
      const auto = await probe(byDefault);
      const on = await probe(await load("on"));
      const off = await probe(await load("off"));
      assert.equal(auto.tokens.length, 12);
      assert.deepEqual(auto, on, "auto is on, bit for bit");
      assert.deepEqual(off.tokens, on.tokens, "the same greedy answer");
      const d = maxDiff(off.logprobs, on.logprobs);
      assert.ok(d > 0, "off reaches llama.cpp: its numbers are not on's");
      assert.ok(d < 1e-2, `and differ only in their last digits (${d})`);
      // each setting is deterministic: the same answer twice
      assert.deepEqual(await probe(byDefault), auto);
    });
  });
}

describe("mf serve: MF_FLASH_ATTENTION and --flash-attention", () => {
  let dir: string;
  const servers: ServingMf[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mf-flash-"));
    await buildTinyImages(dir, { tiny: "FROM ./tiny.gguf\nPARAMETER num_ctx 256\nPARAMETER num_thread 1\n" });
  });

  after(async () => {
    for (const s of servers) await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** mf's environment for this store, without an MF_FLASH_ATTENTION of this process's unless `extra` sets one */
  function env(extra: Record<string, string>): NodeJS.ProcessEnv {
    const e = mfEnv({ HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_HOST: "127.0.0.1:0", ...extra });
    if (!("MF_FLASH_ATTENTION" in extra)) delete e.MF_FLASH_ATTENTION;
    return e;
  }

  /** the load line's setting and the answer's log-probabilities (Ollama's shape), from a fresh mf serve */
  async function served(args: string[], extra: Record<string, string> = {}): Promise<{ line: string; logprobs: number[][] }> {
    const s = await serveMf(["--no-gpu", ...args], env(extra));
    servers.push(s);
    const r = await post(s.base, "/api/generate", { model: "tiny", prompt: PROMPT, raw: true, stream: false, logprobs: true, top_logprobs: 3, options: { temperature: 0, num_predict: 12 } });
    assert.equal(r.status, 200, r.text);
    const entries = (r.json as { logprobs: { logprob: number; top_logprobs: { logprob: number }[] }[] }).logprobs;
    assert.equal(entries.length, 12);
    const line = /loaded tiny:latest in [\d.]+ s \(ctx 256 × 1, 1 thread(; flash attention \w+)\)/.exec(s.output());
    assert.ok(line, s.output());
    await s.stop();
    return { line: line[1]!, logprobs: entries.map((e) => [e.logprob, ...e.top_logprobs.map((t) => t.logprob)]) };
  }

  test("as a user starts it: auto, said in the load line; the variable and the flag reach llama.cpp, the flag first", async () => {
    const byDefault = await served([]);
    assert.equal(byDefault.line, "; flash attention auto");
    const on = await served([], { MF_FLASH_ATTENTION: "on" });
    assert.equal(on.line, "; flash attention on");
    assert.deepEqual(byDefault.logprobs, on.logprobs);
    // Ollama's habit, OLLAMA_FLASH_ATTENTION=0, reads the same under mf's name
    const off = await served([], { MF_FLASH_ATTENTION: "0" });
    assert.equal(off.line, "; flash attention off");
    assert.ok(maxDiff(off.logprobs, on.logprobs) > 0, "off is not on");
    const flag = await served(["--flash-attention", "off"], { MF_FLASH_ATTENTION: "on" });
    assert.equal(flag.line, "; flash attention off");
    assert.deepEqual(flag.logprobs, off.logprobs);
  });

  test("a value it does not take stops mf serve with a clear error, before it listens", async () => {
    for (const [args, extra, said] of [
      [[], { MF_FLASH_ATTENTION: "sometimes" }, /MF_FLASH_ATTENTION takes auto, on or off, not "sometimes"/],
      [["--flash-attention", "sometimes"], {}, /flash-attention.*Given: "sometimes", Choices: "auto", "on", "off"/s],
    ] as const) {
      const child = spawn(process.execPath, [MF_BIN, "serve", "--no-gpu", ...args], { cwd: ROOT, env: env(extra), stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      const code = await new Promise<number | null>((r) => child.on("exit", r));
      assert.notEqual(code, 0, out);
      assert.match(out, said);
      assert.doesNotMatch(out, /listening on/);
    }
  });
});
