/**
 * inference, draft: speculative decoding. The generated BENCH_BIGRAM_TARGET (~230 MB F16) built into one
 * store without a draft and with its agreeing draft (BENCH_BIGRAM_DRAFT, ~3 MB F16: the same bigram
 * function, so every drafted token is right) at each draft_num_predict measured, served by one `mf serve`
 * (the built binary, its own process, on the engine `engineDir` holds when given), CPU only. The same raw
 * prompts at temperature 0 to each in rotating order; generation tok/s is what mf serve reports
 * (eval_count ÷ eval_duration: first token to last, the prompt excluded). Both answers must be the same
 * tokens. The ratio is the one of the table: with the draft ÷ without.
 *
 * Called by inference.ts (its full run, and `--draft-only` for this part alone).
 */
import type { ChildProcess } from "node:child_process";
import type { Llama } from "node-llama-cpp";
import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { buildImage } from "../builder/build.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { BENCH_BIGRAM_DRAFT, BENCH_BIGRAM_TARGET, cachedFixture } from "../fixtures/gguf/index.js";
import { DEFAULT_DRAFT_TOKENS } from "../runtime/engine/types.js";
import { CACHE, fmtStat, ratio, startMfServe, stat, table } from "./lib.js";

export interface DraftFigures {
  /** rows of the summary table (one per draft_num_predict): question, mf, peer, ratio, target */
  rows: string[][];
  section: string;
}

interface Answer {
  context: number[];
  eval_count: number;
  eval_duration: number;
}

interface PsDraft {
  accepted_tokens: number;
  rejected_tokens: number;
  decodes: number;
  draft_num_predict: number;
}

function serve(store: string, threads: number, engineDir: string | undefined): Promise<{ base: string; child: ChildProcess }> {
  return startMfServe(["--threads", String(threads)], {
    ...process.env, ...(engineDir ? { MF_ENGINE_DIR: engineDir } : {}), MF_MODELS: store, MF_NUM_PARALLEL: "1", MF_KEEP_ALIVE: "-1", MF_MAX_LOADED_MODELS: "2",
  });
}

/**
 * What a target decode costs by the tokens it carries (a step with the draft decodes draft_num_predict + 1
 * tokens): node-llama-cpp directly on `llama` (the engine mf serve runs), the target's context with
 * `threads`, the median of `reps` decodes of each size with logits for every token, as a step's check has.
 */
async function decodeCost(llama: Llama, modelPath: string, threads: number, sizes: number[], reps = 15): Promise<Map<number, number>> {
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 1024, threads });
  const out = new Map<number, number>();
  try {
    const seq = context.getSequence();
    const prompt = model.tokenize("Story 0. Once upon a time");
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    for (const n of sizes) {
      const times: number[] = [];
      for (let i = 0; i < reps + 1; i++) {
        const tokens = Array.from({ length: n }, (_, k) => prompt[(i + k) % prompt.length]!);
        const t0 = performance.now();
        await seq.controlledEvaluate(tokens.map((t) => [t, { generateNext: { token: true } }] as const));
        if (i > 0) times.push(performance.now() - t0); // the first of a size sets up its graph
        await seq.eraseContextTokenRanges([{ start: seq.nextTokenIndex - n, end: seq.nextTokenIndex }]);
      }
      out.set(n, stat(times).median);
    }
  } finally {
    await context.dispose();
    await model.dispose();
  }
  return out;
}

/**
 * `predicts`: the draft_num_predict values measured, each in its own phase (one image per value, so a
 * phase keeps its draft loaded): the target alone and the target with that draft, in alternating order.
 */
export async function draftMeasurement(o: {
  reps: number;
  tokens: number;
  threads: number;
  predicts: number[];
  engineDir?: string;
  engineNote: string;
  /** the engine mf serve runs, for the table of decode costs */
  llama: Llama;
}): Promise<DraftFigures> {
  const loadAtStart = loadavg().map((x) => x.toFixed(1)).join(" ");
  const target = await cachedFixture(BENCH_BIGRAM_TARGET, CACHE);
  const draft = await cachedFixture(BENCH_BIGRAM_DRAFT, CACHE);
  const storeDir = join(CACHE, "draft-store");
  rmSync(storeDir, { recursive: true, force: true });
  const store = new LocalStore(storeDir);
  const resolve = { baseDir: CACHE, contextDir: CACHE, homeDir: CACHE };
  const ctx = { kind: "parameter", name: "num_ctx", value: "1024" } as const;
  await buildImage({ commands: [{ kind: "from", value: target }, ctx] }, { store, tags: [parseRef("bigram")], resolve, link: true });
  for (const n of o.predicts) {
    const predict = { kind: "parameter", name: "draft_num_predict", value: String(n) } as const;
    await buildImage({ commands: [{ kind: "from", value: target }, { kind: "draft", value: draft }, ctx, predict] }, { store, tags: [parseRef(`bigram-draft${n}`)], resolve, link: true });
  }

  const { base, child } = await serve(storeDir, o.threads, o.engineDir);
  const ask = async (model: string, i: number): Promise<Answer> => {
    const res = await fetch(base + "/api/generate", {
      method: "POST",
      body: JSON.stringify({ model, prompt: `Story ${i}. Once upon a time`, raw: true, stream: false, keep_alive: -1, options: { temperature: 0, num_predict: o.tokens, seed: 42 } }),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as Answer;
  };
  const psDraft = async (): Promise<PsDraft | undefined> =>
    ((await (await fetch(base + "/api/ps")).json()) as { models: { draft?: PsDraft }[] }).models.find((m) => m.draft)?.draft;
  const counts = new Set<number>();
  let identical = true;
  const rows: string[][] = [];
  const summary: string[][] = [];
  try {
    for (const n of o.predicts) {
      const sides = ["bigram", `bigram-draft${n}`];
      const gen = new Map(sides.map((s) => [s, [] as number[]]));
      for (const s of sides) await ask(s, 0); // load and warm up
      const before = await psDraft();
      for (let i = 1; i <= o.reps; i++) {
        const got = new Map<string, Answer>();
        for (const s of i % 2 ? sides : [...sides].reverse()) {
          const a = await ask(s, i);
          got.set(s, a);
          gen.get(s)!.push((a.eval_count * 1e9) / a.eval_duration);
          counts.add(a.eval_count);
          process.stderr.write(`  ${s}: ${((a.eval_count * 1e9) / a.eval_duration).toFixed(1)} tok/s (${a.eval_count} tokens)\n`);
        }
        if (JSON.stringify(got.get("bigram")!.context) !== JSON.stringify(got.get(sides[1]!)!.context)) identical = false;
      }
      const d = await psDraft();
      const without = stat(gen.get("bigram")!);
      const withDraft = stat(gen.get(sides[1]!)!);
      const [acc, rej, dec] = d && before ? [d.accepted_tokens - before.accepted_tokens, d.rejected_tokens - before.rejected_tokens, d.decodes - before.decodes] : [NaN, NaN, NaN];
      rows.push(
        [`target alone (beside draft_num_predict ${n})`, fmtStat(without), "1.00×", "", ""],
        [`target + draft, draft_num_predict ${n}${n === DEFAULT_DRAFT_TOKENS ? " (Ollama's default)" : ""}`, fmtStat(withDraft), ratio(withDraft.median, without.median), `${acc} / ${rej}`, (acc / dec).toFixed(2)],
      );
      summary.push([
        `mf serve with the agreeing draft (draft_num_predict ${n}) ÷ the same target without a draft, temperature 0, ${o.threads}t`,
        withDraft.median.toFixed(1),
        without.median.toFixed(1),
        ratio(withDraft.median, without.median),
        "≥ 1.5×",
      ]);
    }
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
    const sizes = [...new Set([1, 2, 4, ...o.predicts.map((n) => n + 1), 16])].sort((a, b) => a - b);
    const cost = await decodeCost(o.llama, target, o.threads, sizes);
    const one = cost.get(1)!;
    const costRows = sizes.map((n) => [String(n), cost.get(n)!.toFixed(1), ((cost.get(n)! / one) * 1).toFixed(2), (cost.get(n)! / n).toFixed(2), ratio(one, cost.get(n)! / n)]);
    const section =
      `### speculative decoding, ${o.threads} thread${o.threads > 1 ? "s" : ""}, temperature 0\n\n` +
      `Target: generated BENCH_BIGRAM_TARGET (${BENCH_BIGRAM_TARGET.embeddingLength}-wide, ${BENCH_BIGRAM_TARGET.blockCount} blocks, FFN ${BENCH_BIGRAM_TARGET.feedForwardLength}, ${BENCH_BIGRAM_TARGET.matrixType}); ` +
      `draft: BENCH_BIGRAM_DRAFT (${BENCH_BIGRAM_DRAFT.blockCount} block, FFN ${BENCH_BIGRAM_DRAFT.feedForwardLength}), which computes the same bigram function (zeroBlocks), ` +
      `so every drafted token is the target's. Engine: ${o.engineNote}. One \`mf serve\` (${o.threads} thread${o.threads > 1 ? "s" : ""} for the target, 1 for the draft); ${o.tokens} tokens per answer (${[...counts].join("/")} generated); ` +
      `per draft_num_predict value a phase of ${o.reps} runs per side in alternating order, the target alone measured in the same phase; ` +
      `generation tok/s as mf serve reports it (eval_count ÷ eval_duration). Answers token-identical with and without the draft: ${identical ? "yes" : "NO"}. ` +
      `Each target decode checks the whole draft (mf's patch to node-llama-cpp's \`_speculativeEvaluate\`); the draft stops early at a token it is less than 60% sure of, ` +
      `so "accepted per decode" is below draft_num_predict. Load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadavg().map((x) => x.toFixed(1)).join(" ")} at the end.\n\n` +
      table(["side", "generation tok/s", "÷ target alone", "drafted tokens accepted / rejected", "accepted per target decode"], rows) +
      `\n\nTarget decode by tokens per decode (node-llama-cpp directly on the same engine, ${o.threads} thread${o.threads > 1 ? "s" : ""}, logits for every token as a step's check has; ` +
      `median of 15 decodes each): a step with draft_num_predict N decodes N + 1 tokens; the last column is the decode's own gain per token over 1-token decodes ` +
      `(the target alone also pays the sampling and serving loop once per token, which a step pays once per decode).\n\n` +
      table(["tokens per decode", "ms per decode", "÷ a 1-token decode", "ms per token", "tokens/s ÷ 1-token decodes'"], costRows);
    return { rows: summary, section };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
  }
}
