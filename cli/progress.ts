/**
 * Renders the shared progress events: bars on a terminal (one per transfer, with bytes, rate and ETA),
 * plain lines otherwise (CI logs), where a transfer is printed once, with its final size.
 */
import type { ProgressEvent, ProgressSink } from "../core/progress.js";

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** Seconds as Ollama prints an ETA: `45s`, `3m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

interface Bar {
  line: string;
  /** when this bar's first event came, and its count then (a resumed transfer starts above 0) */
  startMs: number;
  startCompleted: number;
}

/** The rate is shown once a transfer has run this long (a shorter window says nothing useful). */
const RATE_AFTER_MS = 500;

/**
 * On a terminal, every transfer of a step (one blob each: a pull moves several at once) has its own
 * bar line with bytes, rate and ETA, all redrawn in place; a status line without a total ends the
 * block. Elsewhere, one plain line per finished transfer and per status.
 */
export function progressRenderer(stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): ProgressSink & { done(): void } {
  const tty = !!stream.isTTY;
  const bars = new Map<string, Bar>();
  let lastLen = 0;
  let lastDraw = 0;
  /** a bar changed since the block was last drawn */
  let dirty = false;
  const finish = () => {
    if (tty && bars.size > 0) {
      if (dirty) draw();
      stream.write("\n");
    }
    bars.clear();
    lastLen = 0;
  };
  const draw = () => {
    dirty = false;
    const lines = [...bars.values()].map((b) => b.line);
    if (lines.length === 1) {
      // one bar: \r and padding, nothing else (what every terminal and log viewer understands)
      stream.write(`\r${lines[0]}${" ".repeat(Math.max(0, lastLen - lines[0]!.length))}`);
      lastLen = lines[0]!.length;
      return;
    }
    // several: the cursor is on the block's last line; up to its first, rewrite each line, clearing
    // what was longer before
    stream.write(`\x1b[${lines.length - 1}A\r${lines.join("\x1b[K\n")}\x1b[K`);
  };
  const sink = ((e: ProgressEvent) => {
    const key = e.digest ? `${e.status} ${e.digest}` : e.status;
    const hasTotal = typeof e.total === "number" && e.total > 0;
    if (!hasTotal) {
      finish();
      stream.write(`${e.status}\n`);
      return;
    }
    const completed = e.completed ?? 0;
    if (!tty) {
      if (completed >= e.total!) stream.write(`${e.status} ${formatBytes(e.total!)} 100%\n`);
      return;
    }
    const t = now();
    let bar = bars.get(key);
    const added = !bar;
    if (!bar) bars.set(key, (bar = { line: "", startMs: t, startCompleted: completed }));
    const pct = Math.floor((completed / e.total!) * 100);
    const width = 30;
    const filled = Math.round((width * completed) / e.total!);
    let line = `${e.status} ${"█".repeat(filled)}${" ".repeat(width - filled)} ${String(pct).padStart(3)}% ${formatBytes(completed)}/${formatBytes(e.total!)}`;
    const elapsed = t - bar.startMs;
    const moved = completed - bar.startCompleted;
    if (elapsed >= RATE_AFTER_MS && moved > 0) {
      const rate = moved / (elapsed / 1000);
      line += ` ${formatBytes(rate)}/s`;
      if (completed < e.total!) line += ` ${formatDuration((e.total! - completed) / rate)}`;
    }
    dirty ||= bar.line !== line;
    bar.line = line;
    // every bar keeps its latest line; the block is redrawn at most ten times a second (and always
    // for a new bar or a finished one)
    if (!added && completed < e.total! && t - lastDraw < 100) return;
    lastDraw = t;
    // a new bar below others starts on a line of its own
    if (added && bars.size > 1) stream.write("\n");
    draw();
  }) as ProgressSink & { done(): void };
  sink.done = finish;
  return sink;
}
