/**
 * What one render may cost. A template is a program: `{{range 100000000}}` loops, `printf "%s%s" $x $x`
 * doubles a string per step. A `TemplateBudget` bounds a render in steps (nodes walked, loop iterations
 * and function calls: deterministic), in active time (a backstop for single steps that are expensive)
 * and in the length of its output and of any string a function returns. One budget may be shared by
 * every execution of one request (a legacy template runs once per turn, truncation renders repeatedly).
 *
 * The executor also cuts its work into slices of `sliceMs`: at the end of a slice it yields (see
 * exec.ts), and a caller that runs it with `executeAsync` lets the event loop serve others in between,
 * so a template that runs until its budget is spent never stalls the rest of a server. Time spent
 * between slices (other requests) is not counted.
 */

import { MfError } from "../../core/errors.js";

export interface BudgetLimits {
  /** nodes walked, range iterations and function calls */
  steps: number;
  /** characters of the output, and of any one string value a function returns */
  outputChars: number;
  /** milliseconds of active execution */
  timeMs: number;
  /** milliseconds of work between two yields */
  sliceMs: number;
}

/**
 * Sized so that a full-context chat through any of the project's golden templates takes well under a
 * tenth of each (test/runtime/golden-budget.test.ts), while a runaway template is stopped within about
 * a second of work on a 2-core machine (an empty `range` step costs ~40 ns, a function call more).
 */
export const DEFAULT_LIMITS: Readonly<BudgetLimits> = Object.freeze({
  steps: 10_000_000,
  // a 1M-token context is ~4M characters; 32 Mi is far above any prompt and far below V8's ~512 Mi
  // string limit, where the engine would fail with `Invalid string length` after using ~0.5 GB
  outputChars: 32 << 20,
  timeMs: 1_000,
  sliceMs: 5,
});

export type LimitKind = "steps" | "output" | "time";

/**
 * Thrown by the budget: a client's template (or data) at fault, a 400. Inside an execution the executor
 * turns it into a positioned TemplateLimitError.
 */
export class BudgetExceeded extends MfError {
  constructor(readonly kind: LimitKind, readonly reason: string) {
    super("TEMPLATE_INVALID", `template execution budget exceeded: ${reason}`);
    this.name = "BudgetExceeded";
  }
}

const now = () => performance.now();

export class TemplateBudget {
  readonly limits: Readonly<BudgetLimits>;
  /** steps used so far */
  steps = 0;
  /** milliseconds of active execution before the current slice */
  private spent = 0;
  private sliceStart = now();
  private running = 0;
  /** the current slice is over: the executor should yield at its next chance */
  due = false;

  constructor(limits: Partial<BudgetLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** milliseconds of active execution so far */
  get activeMs(): number {
    return this.spent + (this.running > 0 ? now() - this.sliceStart : 0);
  }

  /** Counts a step; the clock is read every 64 steps. */
  step(): void {
    if (++this.steps > this.limits.steps) {
      throw new BudgetExceeded("steps", `more than ${this.limits.steps} steps`);
    }
    if ((this.steps & 63) === 0) this.clock();
  }

  /** Counts a function call, which may be costly: a step, and the clock read now. */
  call(): void {
    this.step();
    if ((this.steps & 63) !== 0) this.clock();
  }

  /** Checks a length against the output limit. */
  output(length: number): void {
    if (length > this.limits.outputChars) {
      throw new BudgetExceeded("output", `output longer than ${this.limits.outputChars} characters`);
    }
  }

  private clock(): void {
    const t = now();
    if (this.spent + (t - this.sliceStart) > this.limits.timeMs) {
      throw new BudgetExceeded("time", `more than ${this.limits.timeMs} ms of work`);
    }
    if (t - this.sliceStart >= this.limits.sliceMs) this.due = true;
  }

  /** An execution starts (or resumes after a yield). Executions may nest: only the outermost counts. */
  resume(): void {
    if (this.running++ === 0) {
      this.sliceStart = now();
      this.due = false;
    }
  }

  /** An execution ends (or yields). */
  pause(): void {
    if (--this.running === 0) this.spent += now() - this.sliceStart;
  }
}
