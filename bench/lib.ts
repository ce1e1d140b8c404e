/** Shared bits of the benchmarks: timing commands, medians with spread, Markdown tables, results files. */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..");
export const CACHE = join(ROOT, "bench", "cache");

export interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function stat(runs: number[]): Stat {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s.at(-1)!, runs };
}

export interface PairedRatio {
  median: number;
  low: number;
  high: number;
  /** the confidence the interval has: at least the level asked for, but with fewer than 6 rounds, where no interval of order statistics reaches 95% */
  level: number;
  rounds: number;
}

/**
 * The ratio of two sides measured in the same rounds (`a.runs[i]` beside `b.runs[i]`): the median of the
 * per-round ratios, and a distribution-free confidence interval for that median (order statistics of the
 * sorted ratios, the k-th from each end, with k the largest for which a Binomial(n, ½) falls below k with
 * probability at most (1 − level) / 2; with 8 rounds or fewer that is the whole range). A ratio of medians
 * mixes runs minutes apart; a per-round ratio compares runs seconds apart, which shared the machine's state,
 * so a drift of its speed (±15% within minutes on the 2-core machine) cancels out.
 */
export function pairedRatio(a: readonly number[], b: readonly number[], level = 0.95): PairedRatio | undefined {
  const r = a.map((x, i) => x / b[i]!).filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  const n = r.length;
  if (n === 0) return undefined;
  // the interval [r(k), r(n−k+1)] (1-based) misses the median with probability 2·P(B ≤ k − 1), B ~ Binomial(n, ½):
  // the largest k ≤ n/2 for which that is at most 1 − level, or k = 1 (the whole range) when none is
  let k = 1;
  let term = 2 ** -n; // P(B = k − 1)
  let cum = term; // P(B ≤ k − 1)
  while (k < n - k) {
    const t = (term * (n - k + 1)) / k; // P(B = k)
    if (cum + t > (1 - level) / 2) break;
    term = t;
    cum += t;
    k++;
  }
  return { median: stat(r).median, low: r[k - 1]!, high: r[n - k]!, level: 1 - 2 * cum, rounds: n };
}

/** A paired ratio as `0.98× (0.95–1.01)`. */
export function fmtPaired(p: PairedRatio | undefined): string {
  return p ? `${p.median.toFixed(2)}× (${p.low.toFixed(2)}–${p.high.toFixed(2)})` : "—";
}

/** Runs a command and returns its wall time in seconds; throws if it fails. */
export function timeCommand(cmd: string, args: string[], opts: SpawnSyncOptions = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], ...opts });
  const t = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr?.toString().slice(0, 2000)}`);
  return t;
}

export function fmtSeconds(s: Stat): string {
  return `${s.median.toFixed(2)} s (${s.min.toFixed(2)}–${s.max.toFixed(2)})`;
}

export function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** `median (min–max)` of a Stat, with `digits` decimals. */
export function fmtStat(s: Stat, digits = 1): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

/** a ÷ b of two medians, as `1.23×`. */
export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`;
}

export const RESULTS = join(ROOT, "bench", "results");

/** Today's results file: bench/results/<date>.md. */
export function resultsFile(date = new Date().toISOString().slice(0, 10)): string {
  return join(RESULTS, `${date}.md`);
}

/**
 * Prints a result section and puts it into today's results file (bench/results/<date>.md), replacing
 * the section of the same name if the file has one, so `npm run bench -- <name>` refreshes one section
 * and `npm run bench` writes them all.
 */
export function report(name: string, markdown: string): string {
  mkdirSync(RESULTS, { recursive: true });
  const file = resultsFile();
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, "utf8") : `# mf benchmarks, ${new Date().toISOString().slice(0, 10)}\n\n${machine()}\n`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
  process.stdout.write(markdown.trim() + "\n");
  process.stdout.write(`\n(written to ${file})\n`);
  return file;
}

/** One line about the machine the figures come from. */
export function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  return `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} at start; node ${process.version}. ` +
    "Every figure is the median of several runs (min–max), measured side by side with its peer in the same run.";
}

/** Starts the built `mf serve` on 127.0.0.1:0 with `args` and `env`; resolves with its base URL once it listens. */
export async function startMfServe(args: string[], env: NodeJS.ProcessEnv): Promise<{ base: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(ROOT, "dist", "cli", "main.js"), "serve", "--host", "127.0.0.1:0", "--no-gpu", ...args], {
    env,
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
  // what mf says about its threads (the default count it measured on the prebuilt binary) goes to the bench's log
  let rest = "";
  child.stdout!.on("data", (d) => {
    const lines = (rest + d).split("\n");
    rest = lines.pop()!;
    for (const l of lines) {
      const m = /"msg":"(threads: \d+ for [^"]*)"/.exec(l);
      if (m) process.stderr.write(`  mf serve ${args.join(" ") || "(defaults)"}: ${m[1]}\n`);
    }
  });
  return { base, child };
}
