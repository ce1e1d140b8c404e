/**
 * How many CPU threads a model runs with: the thread policy, pure (the facts come from `cpu.ts`, or from
 * a test). llama.cpp's worker threads wait for each other by spinning, so a decode with more threads than
 * CPUs free to run them stalls at every barrier: 4 threads on 2 cores ran 50× slower than 2. Hence:
 *
 * - `usable`: the CPUs this process may run on: its CPU affinity, then the cgroup CPU quota (rounded
 *   down: a thread throttled by the quota stalls the others as surely as a missing core), at least 1.
 *   Every thread count, whoever asked for it, is clamped to it.
 * - the default count: the physical cores among those CPUs (SMT siblings share one core's arithmetic
 *   units, and llama.cpp's own count of "math" cores, without efficiency cores, when it is lower), at
 *   most `usable`.
 * - while it runs, `nextFreeCpus` lowers the threads of default-count models to the CPUs other processes
 *   leave free (once their load has lasted two readings), so that a shared machine degrades to fewer
 *   threads instead of collapsing.
 */

export interface CpuFacts {
  /** logical CPUs online (os.cpus().length) */
  online: number;
  /** ids of the CPUs this process may run on (its affinity mask); undefined when unknown */
  allowed?: readonly number[];
  /** os.availableParallelism(): the affinity count where `allowed` is unknown */
  parallelism?: number;
  /** the physical core of each CPU id (any key shared by SMT siblings only), where the topology is known */
  cores?: ReadonlyMap<number, string>;
  /** the cgroup CPU limit in CPUs (quota ÷ period, the lowest on the way to the root); undefined: none */
  quota?: number;
  /** llama.cpp's own count of math cores (physical, without efficiency cores), machine-wide */
  mathCores?: number;
}

export interface ThreadPlan {
  /** CPUs this process may use: affinity, then the cgroup quota */
  usable: number;
  /** physical cores among those CPUs */
  physical: number;
  /** the default thread count of a model */
  threads: number;
  /** how `threads` was found, for the log */
  why: string;
}

const whole = (n: number | undefined): number | undefined => (n !== undefined && Number.isFinite(n) && n >= 1 ? Math.floor(n) : undefined);

export function planThreads(f: CpuFacts): ThreadPlan {
  const allowed = f.allowed?.length ? f.allowed : undefined;
  const affinity = allowed?.length ?? whole(f.parallelism) ?? whole(f.online) ?? 1;
  const quota = f.quota !== undefined && Number.isFinite(f.quota) && f.quota > 0 ? Math.max(1, Math.floor(f.quota + 1e-9)) : undefined;
  const usable = Math.max(1, Math.min(affinity, quota ?? Infinity));
  let physical = affinity;
  if (allowed && f.cores) {
    const keys = new Set<string>();
    let known = true;
    for (const cpu of allowed) {
      const k = f.cores.get(cpu);
      if (k === undefined) known = false;
      else keys.add(k);
    }
    if (known && keys.size > 0) physical = keys.size;
  }
  const math = whole(f.mathCores);
  if (math !== undefined) physical = Math.min(physical, math);
  const threads = Math.max(1, Math.min(physical, usable));
  const parts = [`${affinity} CPU${affinity === 1 ? "" : "s"} allowed`];
  if (physical < affinity) parts.push(`${physical} physical core${physical === 1 ? "" : "s"}`);
  if (quota !== undefined) parts.push(`cgroup quota ${Number(f.quota!.toFixed(2))} CPU${f.quota === 1 ? "" : "s"}`);
  return { usable, physical, threads, why: parts.join(", ") };
}

/**
 * An engine without a persistent threadpool (node-llama-cpp's prebuilt binary) starts and joins its
 * worker threads inside every decode. Where that is dear (a paravirtualised machine, where each new
 * thread's page faults exit to the hypervisor), the default count's extra threads cost more than they
 * give: on such a 2-core machine, 2 threads generated with the bench's 200M model at 0.45× of 1 thread
 * and with a 25M model at 0.12×; on another they gave 1.2×. So on that engine the default count of a
 * model is measured over its first answers, as they are served (the HTTP client, the writes of every
 * token and the read-ahead beside the decode all count): blocks of TRIAL_BLOCK tokens at 1 thread and at
 * the policy's count, in the order 1, N, N, 1, 1, N, comparing the median times between tokens.
 * Generations at load, away from the serving loop, did not show it: on the bench model they chose
 * 2 threads at 9–13 ms a token, while answering at 2 threads then ran at 20 ms a token against 15 at 1.
 */
export const TRIAL_BLOCK = 8;
/** the first gaps of a block, not counted: the token decoded ahead of a switch ran at the other count */
export const TRIAL_SETTLE = 2;
/** the blocks of a whole trial (half at each count) */
export const TRIAL_BLOCKS = 6;
/** medians this far apart after the first block at each count decide at once */
export const TRIAL_CLEAR = 1.5;
/** 1 thread replaces the policy's count only when its median is this much faster (the more threads also halve a prompt's time) */
export const TRIAL_MARGIN = 1.05;

/** The median of each count's times (ms). */
export function medians(times: ReadonlyMap<number, readonly number[]>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [n, xs] of times) {
    if (!xs.length) continue;
    const s = [...xs].sort((a, b) => a - b);
    out.set(n, s[s.length >> 1]!);
  }
  return out;
}

/**
 * The measurement of a default count `threads` against 1 thread over a model's first answers. The engine
 * decodes at `current`; `record` takes each time between two tokens of an answer decoded alone at that
 * count, and says when `current` changed. `chosen` is set once the trial has decided.
 */
export class ThreadTrial {
  private block = 0;
  private inBlock = 0;
  readonly times: Map<number, number[]>;
  chosen: number | undefined;

  constructor(readonly threads: number) {
    this.times = new Map([
      [threads, []],
      [1, []],
    ]);
  }

  /** the count the model decodes with now: 1, N, N, 1, 1, N by block, then the chosen one */
  get current(): number {
    return this.chosen ?? ((this.block + 1) & 2 ? this.threads : 1);
  }

  /**
   * One time between two tokens (ms) decoded at `current`; true when the engine has something to do: `current`
   * changed with it, or the trial decided (also when it keeps the count of its last block, which must still be
   * said and remembered).
   */
  record(ms: number): boolean {
    if (this.chosen !== undefined) return false;
    if (this.inBlock++ >= TRIAL_SETTLE) this.times.get(this.current)!.push(ms);
    if (this.inBlock < TRIAL_BLOCK) return false;
    const was = this.current;
    this.inBlock = 0;
    this.block++;
    if (this.block === 2 || this.block >= TRIAL_BLOCKS) {
      const m = medians(this.times);
      const many = m.get(this.threads)!;
      const one = m.get(1)!;
      if (this.block >= TRIAL_BLOCKS || Math.max(many, one) >= TRIAL_CLEAR * Math.min(many, one)) {
        this.chosen = one * TRIAL_MARGIN < many ? 1 : this.threads;
        return true;
      }
    }
    return this.current !== was;
  }
}

/** A thread count someone asked for, clamped to the usable CPUs; `clamped` says whether it was lowered. */
export function clampThreads(asked: number, plan: Pick<ThreadPlan, "usable">): { threads: number; clamped: boolean } {
  const n = Math.max(1, Math.floor(asked));
  return n > plan.usable ? { threads: plan.usable, clamped: true } : { threads: n, clamped: false };
}

/**
 * Others' load above which a CPU no longer counts as free (in CPUs): a competitor taking a quarter of a
 * core already costs a spinning 2-thread decode about as much as dropping to 1 thread does (measured on
 * the bench model, 2 cores); below the second figure it counts as free again (a band, so the count does
 * not flap).
 */
export const BUSY_ABOVE = 0.3;
export const FREE_BELOW = 0.15;
/**
 * How long others' load must stay low before the count rises again. Too many threads for the free cores
 * costs tens of times the speed, too few about a third at worst: the count rises only after this much
 * calm, so bursts of other work a second apart never catch a decode with more threads than free cores.
 */
export const RISE_AFTER_MS = 1000;
/**
 * How long others' load must stay high before the count drops: two readings. A single busy reading is
 * most often the tail of something that already ended (another server's workers polling for a moment
 * after their last decode, a client parsing a burst of tokens); dropping on it cost a default-count model
 * a second at the lower count for nothing (measured in the bench's defaults part: 0.77× of 2 threads on
 * an idle machine). A competitor that stays is caught 200 ms later than on its first reading.
 */
export const DROP_AFTER_MS = 400;

export interface FreeCpus {
  /** the CPUs left free for our threads, 1 to `usable` */
  free: number;
  /** how long others' load has allowed more than `free` */
  calmMs: number;
  /** how long others' load has left fewer than `free` */
  busyMs?: number;
}

/**
 * The next count of CPUs left free for our threads, from the last one and a reading: other processes
 * kept `othersBusy` CPUs busy (our own threads excluded) over the last `elapsedMs`. It drops once others
 * have taken more than BUSY_ABOVE of a CPU for DROP_AFTER_MS; it rises once they have taken less than
 * FREE_BELOW for RISE_AFTER_MS.
 */
export function nextFreeCpus(prev: FreeCpus, usable: number, othersBusy: number, elapsedMs: number): FreeCpus {
  const busy = Math.max(0, Number.isFinite(othersBusy) ? othersBusy : 0);
  const clamp = (n: number) => Math.max(1, Math.min(usable, n));
  const free = clamp(prev.free);
  const elapsed = Math.max(0, elapsedMs);
  const keep = clamp(Math.floor(usable - busy + BUSY_ABOVE));
  if (keep < free) {
    const busyMs = (prev.busyMs ?? 0) + elapsed;
    return busyMs >= DROP_AFTER_MS ? { free: keep, calmMs: 0, busyMs: 0 } : { free, calmMs: 0, busyMs };
  }
  const rise = clamp(Math.floor(usable - busy + FREE_BELOW));
  if (rise <= free) return { free, calmMs: 0, busyMs: 0 };
  const calmMs = prev.calmMs + elapsed;
  return calmMs >= RISE_AFTER_MS ? { free: rise, calmMs: 0, busyMs: 0 } : { free, calmMs, busyMs: 0 };
}
