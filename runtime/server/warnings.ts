/**
 * Warnings about requests (an unknown option name, an option the engine ignores), each logged once, within
 * bounds: clients choose the words, so what is remembered is a capped set of short lines (least recently
 * seen out first), each line is cut to `maxLength`, and at most `perMinute` lines are logged a minute; the
 * ones held back are counted and the count rides on the next line logged.
 */

export interface WarnOnceOptions {
  /** lines remembered (default 1000) */
  capacity?: number;
  /** characters of a line (default 200) */
  maxLength?: number;
  /** new lines logged per minute (default 20) */
  perMinute?: number;
  now?: () => number;
}

export class WarnOnce {
  private readonly seen = new Set<string>();
  private readonly capacity: number;
  private readonly maxLength: number;
  private readonly perMinute: number;
  private readonly now: () => number;
  private windowStart = -Infinity;
  private inWindow = 0;
  private held = 0;

  constructor(private readonly log: (line: string) => void, o: WarnOnceOptions = {}) {
    this.capacity = o.capacity ?? 1000;
    this.maxLength = o.maxLength ?? 200;
    this.perMinute = o.perMinute ?? 20;
    this.now = o.now ?? Date.now;
  }

  /** lines remembered now */
  get size(): number {
    return this.seen.size;
  }

  warn(message: string): void {
    const line = message.length > this.maxLength ? message.slice(0, this.maxLength) + "…" : message;
    if (this.seen.has(line)) {
      this.seen.delete(line);
      this.seen.add(line);
      return;
    }
    this.seen.add(line);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value!);
    const t = this.now();
    if (t - this.windowStart >= 60_000) {
      this.windowStart = t;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perMinute) {
      this.held++;
      return;
    }
    this.inWindow++;
    const note = this.held ? ` (and ${this.held} other warnings not logged)` : "";
    this.held = 0;
    this.log(line + note);
  }
}
