/**
 * inference, draft: speculative decoding. The generated BENCH_BIGRAM_TARGET (~120 MB Q8_0) built twice into
 * one store, without and with its agreeing draft (BENCH_BIGRAM_DRAFT, ~1.5 MB: the same bigram function, so
 * every drafted token is right), served by one `mf serve` (the built binary, its own process), CPU only.
 * The same raw prompts at temperature 0 to each in rotating order; generation tok/s is what mf serve
 * reports (eval_count ÷ eval_duration: first token to last, the prompt excluded). Both answers must be the
 * same tokens. The ratio is the one of the table: with the draft ÷ without.
 *
 * Called by inference.ts (its full run, and `--draft-only` for this part alone).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { buildImage } from "../builder/build.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { BENCH_BIGRAM_DRAFT, BENCH_BIGRAM_TARGET, cachedFixture } from "../fixtures/gguf/index.js";
import { CACHE, ROOT, fmtStat, ratio, stat, table } from "./lib.js";

export interface DraftFigures {
  /** a row of the summary table: question, mf, peer, ratio, target */
  row: string[];
  section: string;
}

interface Answer {
  context: number[];
  eval_count: number;
  eval_duration: number;
}

async function serve(store: string, threads: number): Promise<{ base: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(ROOT, "dist", "cli", "main.js"), "serve", "--host", "127.0.0.1:0", "--no-gpu", "--threads", String(threads)], {
    env: { ...process.env, MF_MODELS: store, MF_NUM_PARALLEL: "1", MF_KEEP_ALIVE: "-1", MF_MAX_LOADED_MODELS: "2" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const base = await new Promise<string>((res, rej) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) res(m[1]!);
    });
    child.once("exit", (c) => rej(new Error(`mf serve exited ${c}`)));
  });
  child.stdout!.resume();
  return { base, child };
}

export async function draftMeasurement(o: { reps: number; tokens: number; threads: number }): Promise<DraftFigures> {
  const target = await cachedFixture(BENCH_BIGRAM_TARGET, CACHE);
  const draft = await cachedFixture(BENCH_BIGRAM_DRAFT, CACHE);
  const storeDir = join(CACHE, "draft-store");
  rmSync(storeDir, { recursive: true, force: true });
  const store = new LocalStore(storeDir);
  const resolve = { baseDir: CACHE, contextDir: CACHE, homeDir: CACHE };
  const ctx = { kind: "parameter", name: "num_ctx", value: "1024" } as const;
  await buildImage({ commands: [{ kind: "from", value: target }, ctx] }, { store, tags: [parseRef("bigram")], resolve, link: true });
  await buildImage({ commands: [{ kind: "from", value: target }, { kind: "draft", value: draft }, ctx] }, { store, tags: [parseRef("bigram-draft")], resolve, link: true });

  const { base, child } = await serve(storeDir, o.threads);
  const ask = async (model: string, i: number): Promise<Answer> => {
    const res = await fetch(base + "/api/generate", {
      method: "POST",
      body: JSON.stringify({ model, prompt: `Story ${i}. Once upon a time`, raw: true, stream: false, keep_alive: -1, options: { temperature: 0, num_predict: o.tokens, seed: 42 } }),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
    return (await res.json()) as Answer;
  };
  const sides = ["bigram", "bigram-draft"];
  const gen = new Map(sides.map((s) => [s, [] as number[]]));
  const counts = new Set<number>();
  let identical = true;
  try {
    for (const s of sides) await ask(s, 0); // load and warm up
    for (let i = 1; i <= o.reps; i++) {
      const got = new Map<string, Answer>();
      for (const s of i % 2 ? sides : [...sides].reverse()) {
        const a = await ask(s, i);
        got.set(s, a);
        gen.get(s)!.push((a.eval_count * 1e9) / a.eval_duration);
        counts.add(a.eval_count);
        process.stderr.write(`  ${s}: ${((a.eval_count * 1e9) / a.eval_duration).toFixed(1)} tok/s (${a.eval_count} tokens)\n`);
      }
      if (JSON.stringify(got.get("bigram")!.context) !== JSON.stringify(got.get("bigram-draft")!.context)) identical = false;
    }
    const ps = (await (await fetch(base + "/api/ps")).json()) as { models: { name: string; draft?: { accepted_tokens: number; rejected_tokens: number; draft_num_predict: number } }[] };
    const d = ps.models.find((m) => m.draft)?.draft;
    const without = stat(gen.get("bigram")!);
    const withDraft = stat(gen.get("bigram-draft")!);
    const rows = [
      ["mf serve, target alone", fmtStat(without), "1.00×", ""],
      [`mf serve, target + draft (draft_num_predict ${d?.draft_num_predict ?? "?"})`, fmtStat(withDraft), ratio(withDraft.median, without.median), d ? `${d.accepted_tokens} / ${d.rejected_tokens}` : "?"],
    ];
    const section =
      `### speculative decoding, ${o.threads} thread${o.threads > 1 ? "s" : ""}, temperature 0\n\n` +
      `Target: generated BENCH_BIGRAM_TARGET (${BENCH_BIGRAM_TARGET.embeddingLength}-wide, ${BENCH_BIGRAM_TARGET.blockCount} blocks, FFN ${BENCH_BIGRAM_TARGET.feedForwardLength}, ${BENCH_BIGRAM_TARGET.matrixType}); ` +
      `draft: BENCH_BIGRAM_DRAFT (${BENCH_BIGRAM_DRAFT.blockCount} block, FFN ${BENCH_BIGRAM_DRAFT.feedForwardLength}), which computes the same bigram function (zeroBlocks), ` +
      `so every drafted token is the target's. ${o.tokens} tokens per answer (${[...counts].join("/")} generated), ${o.reps} runs per side in alternating order, ` +
      `generation tok/s as mf serve reports it (eval_count ÷ eval_duration). Answers token-identical with and without the draft: ${identical ? "yes" : "NO"}. ` +
      `node-llama-cpp 3.21.1 validates one drafted token per target decode (runtime/engine/draft.ts), so at most two tokens come out of one decode.\n\n` +
      table(["side", "generation tok/s", "÷ target alone", "drafted tokens accepted / rejected"], rows);
    return {
      row: [`mf serve with the agreeing draft ÷ the same target without a draft, temperature 0, ${o.threads}t`, withDraft.median.toFixed(1), without.median.toFixed(1), ratio(withDraft.median, without.median), "≥ 1.5×"],
      section,
    };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
  }
}
