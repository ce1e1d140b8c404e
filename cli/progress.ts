/**
 * Renders the shared progress events: a bar on a terminal, plain lines otherwise (CI logs). Lines for
 * the same status are printed once, with the final numbers.
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

export function progressRenderer(stream: NodeJS.WriteStream = process.stderr): ProgressSink & { done(): void } {
  const tty = !!stream.isTTY;
  let current: string | undefined;
  let lastLen = 0;
  let lastDraw = 0;
  const finish = () => {
    if (tty && current !== undefined) stream.write("\n");
    current = undefined;
    lastLen = 0;
  };
  const sink = ((e: ProgressEvent) => {
    const key = e.digest ? `${e.status} ${e.digest}` : e.status;
    const hasTotal = typeof e.total === "number" && e.total > 0;
    if (!hasTotal) {
      if (current !== undefined) finish();
      stream.write(`${e.status}\n`);
      return;
    }
    const completed = e.completed ?? 0;
    const pct = Math.floor((completed / e.total!) * 100);
    if (tty) {
      const now = Date.now();
      if (key === current && completed < e.total! && now - lastDraw < 100) return;
      lastDraw = now;
      if (key !== current) finish();
      current = key;
      const width = 30;
      const filled = Math.round((width * completed) / e.total!);
      const line = `${e.status} ${"█".repeat(filled)}${" ".repeat(width - filled)} ${String(pct).padStart(3)}% ${formatBytes(completed)}/${formatBytes(e.total!)}`;
      stream.write(`\r${line}${" ".repeat(Math.max(0, lastLen - line.length))}`);
      lastLen = line.length;
    } else if (completed >= e.total!) {
      stream.write(`${e.status} ${formatBytes(e.total!)} 100%\n`);
    }
  }) as ProgressSink & { done(): void };
  sink.done = finish;
  return sink;
}
