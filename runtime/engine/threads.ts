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
 * and with a 25M model at 0.12×; on another they gave 1.2×. So the default count of a model on that
 * engine is measured once, at load: short greedy generations at the policy's count and at 1 thread, in
 * turns, comparing the time between tokens. Decodes alone, one after the other, do not show it: there
 * 2 threads often matched 1 on the same machine where generating with them was twice as slow.
 *
 * Two first tokens each this slow at the policy's count mean the threads' start is noise beside a decode
 * (12 ms a decode at worst, measured): the policy's count stands then, without generating at 1 thread (a
 * large model would spend seconds on it).
 */
export const CALIBRATE_UNDER_MS = 100;
/** the largest context the measurement generates in (the model's own when smaller) */
export const CALIBRATE_CONTEXT = 2048;
/** rounds of the measurement: one generation at each count a round, in alternating order */
export const CALIBRATE_ROUNDS = 2;
/** the gaps between tokens that each generation of the measurement times */
export const CALIBRATE_TOKENS = 5;

/** The count that generated faster in the calibration: medians of the times between tokens (ms) per count. */
export function calibratedThreads(times: ReadonlyMap<number, readonly number[]>): { threads: number; medians: Map<number, number> } {
  const medians = new Map<number, number>();
  for (const [n, xs] of times) {
    if (!xs.length) continue;
    const s = [...xs].sort((a, b) => a - b);
    medians.set(n, s[s.length >> 1]!);
  }
  // the more threads win a tie: they are what the policy chose
  const best = [...medians].sort((a, b) => a[1] - b[1] || b[0] - a[0])[0];
  return { threads: best?.[0] ?? 1, medians };
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
