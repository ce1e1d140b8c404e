/**
 * The thread policy (runtime/engine/threads.ts) over core counts, SMT, affinity and cgroup quotas, and
 * the reader of the system facts (runtime/engine/cpu.ts) over /proc and /sys trees written to a temp
 * directory: cgroup v1 and v2, nested limits, a container's namespaced cgroup root.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CpuLoadMeter, parseCpuList, readCpuFacts } from "../../runtime/engine/cpu.js";
import { type CpuFacts, DROP_AFTER_MS, RISE_AFTER_MS, TRIAL_BLOCK, TRIAL_BLOCKS, TRIAL_SETTLE, ThreadTrial, clampThreads, nextFreeCpus, planThreads } from "../../runtime/engine/threads.js";

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
/** CPUs 0..n-1 where CPU i and i + n/2 are SMT siblings of one core (Linux's usual numbering) */
const smt = (n: number) => new Map(range(n).map((i) => [i, `core${i % (n / 2)}`]));
const noSmt = (n: number) => new Map(range(n).map((i) => [i, `core${i}`]));

describe("planThreads", () => {
  const cases: { name: string; facts: CpuFacts; usable: number; threads: number }[] = [
    { name: "2 cores, no SMT (this project's machines)", facts: { online: 2, allowed: [0, 1], cores: noSmt(2) }, usable: 2, threads: 2 },
    { name: "1 core", facts: { online: 1, allowed: [0], cores: noSmt(1) }, usable: 1, threads: 1 },
    { name: "8 logical CPUs on 4 SMT cores: one thread per core", facts: { online: 8, allowed: range(8), cores: smt(8) }, usable: 8, threads: 4 },
    { name: "64 cores", facts: { online: 64, allowed: range(64), cores: noSmt(64) }, usable: 64, threads: 64 },
    { name: "affinity to 2 of 16 cores (taskset -c 4,5)", facts: { online: 16, allowed: [4, 5], cores: noSmt(16) }, usable: 2, threads: 2 },
    { name: "affinity to two SMT siblings of one core", facts: { online: 8, allowed: [0, 4], cores: smt(8) }, usable: 2, threads: 1 },
    { name: "affinity to 3 CPUs on 3 different cores", facts: { online: 8, allowed: [0, 1, 2], cores: smt(8) }, usable: 3, threads: 3 },
    { name: "cgroup quota of 2 CPUs on 16 cores (docker --cpus 2)", facts: { online: 16, allowed: range(16), cores: noSmt(16), quota: 2 }, usable: 2, threads: 2 },
    { name: "fractional quota 1.5 rounds down", facts: { online: 16, allowed: range(16), cores: noSmt(16), quota: 1.5 }, usable: 1, threads: 1 },
    { name: "quota under one CPU still gives one thread", facts: { online: 4, allowed: range(4), cores: noSmt(4), quota: 0.25 }, usable: 1, threads: 1 },
    { name: "quota above the physical cores: the cores win", facts: { online: 8, allowed: range(8), cores: smt(8), quota: 6 }, usable: 6, threads: 4 },
    { name: "quota and affinity together: the lower", facts: { online: 16, allowed: range(4), cores: noSmt(16), quota: 3 }, usable: 3, threads: 3 },
    { name: "llama.cpp counts fewer math cores (efficiency cores left out)", facts: { online: 16, allowed: range(16), cores: noSmt(16), mathCores: 8 }, usable: 16, threads: 8 },
    { name: "no topology: the allowed CPUs", facts: { online: 12, allowed: range(6) }, usable: 6, threads: 6 },
    { name: "topology missing for an allowed CPU: the allowed CPUs", facts: { online: 4, allowed: range(4), cores: new Map([[0, "a"], [1, "a"]]) }, usable: 4, threads: 4 },
    { name: "no affinity list: availableParallelism", facts: { online: 32, parallelism: 6 }, usable: 6, threads: 6 },
    { name: "nothing but the online count", facts: { online: 3 }, usable: 3, threads: 3 },
    { name: "nonsense readings fall back to one", facts: { online: 0, parallelism: Number.NaN, quota: Number.NaN }, usable: 1, threads: 1 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = planThreads(c.facts);
      assert.deepEqual([p.usable, p.threads], [c.usable, c.threads], p.why);
      assert.ok(p.threads <= p.usable && p.threads >= 1);
    });
  }

  test("the reason names what limited the count", () => {
    assert.match(planThreads({ online: 8, allowed: range(8), cores: smt(8), quota: 6 }).why, /8 CPUs allowed, 4 physical cores, cgroup quota 6 CPUs/);
  });
});

test("clampThreads: counts above the usable CPUs are lowered and say so; others kept as whole numbers", () => {
  assert.deepEqual(clampThreads(64, { usable: 2 }), { threads: 2, clamped: true });
  assert.deepEqual(clampThreads(3, { usable: 2 }), { threads: 2, clamped: true });
  assert.deepEqual(clampThreads(2, { usable: 2 }), { threads: 2, clamped: false });
  assert.deepEqual(clampThreads(1, { usable: 8 }), { threads: 1, clamped: false });
  assert.deepEqual(clampThreads(2.7, { usable: 8 }), { threads: 2, clamped: false });
});

/** Feeds a trial the gaps `gap(count, i)` until it decides (or `max` gaps); the count of every gap, in order. */
function runTrial(trial: ThreadTrial, gap: (threads: number, i: number) => number, max = 1000): number[] {
  const counts: number[] = [];
  for (let i = 0; i < max && trial.chosen === undefined; i++) {
    const before = trial.current;
    counts.push(before);
    const changed = trial.record(gap(before, i));
    assert.equal(changed, trial.current !== before || trial.chosen !== undefined, "record() says when the count changed or the trial decided");
  }
  return counts;
}

/** the blocks of a run, as one count each */
const blocks = (counts: number[]) => counts.filter((_, i) => i % TRIAL_BLOCK === 0);

test("ThreadTrial: a clear loser is known after one block at each count (1 first)", () => {
  // a paravirtualised 2-core machine with the prebuilt binary: each decode's thread start dominates
  const pvm = new ThreadTrial(2);
  const counts = runTrial(pvm, (n) => (n === 2 ? 15 : 2));
  assert.deepEqual(blocks(counts), [1, 2]);
  assert.equal(counts.length, 2 * TRIAL_BLOCK);
  assert.equal(pvm.chosen, 1);
  assert.equal(pvm.current, 1);
  // and the other way round: the more threads, clearly faster
  const fast = new ThreadTrial(4);
  runTrial(fast, (n) => (n === 4 ? 3 : 10));
  assert.equal(fast.chosen, 4);
  // once decided it takes no more and changes nothing
  assert.equal(fast.record(1000), false);
  assert.equal(fast.current, 4);
});

test("ThreadTrial: close counts run every block, 1, N, N, 1, 1, N; 1 thread must be TRIAL_MARGIN faster to win", () => {
  const slower = new ThreadTrial(2);
  const counts = runTrial(slower, (n) => (n === 2 ? 11 : 10));
  assert.deepEqual(blocks(counts), [1, 2, 2, 1, 1, 2]);
  assert.equal(counts.length, TRIAL_BLOCKS * TRIAL_BLOCK);
  assert.equal(slower.chosen, 1);
  // within the margin the policy's count stands (it also halves a prompt's time)
  const tie = new ThreadTrial(2);
  runTrial(tie, (n) => (n === 2 ? 10.3 : 10));
  assert.equal(tie.chosen, 2);
  // the counted gaps: a block's first TRIAL_SETTLE ran partly at the other count
  const per = (TRIAL_BLOCKS / 2) * (TRIAL_BLOCK - TRIAL_SETTLE);
  assert.deepEqual([...tie.times].map(([n, xs]) => [n, xs.length]), [[2, per], [1, per]]);
});

test("ThreadTrial: the medians ignore a block's settling gaps and single slow moments", () => {
  const t = new ThreadTrial(2);
  runTrial(t, (n, i) => {
    if (i % TRIAL_BLOCK < TRIAL_SETTLE) return n === 2 ? 1 : 500; // settling: not counted
    if (i % 5 === 0) return 400; // the machine's moments, at either count
    return n === 2 ? 20 : 14;
  });
  assert.equal(t.chosen, 1);
});

describe("nextFreeCpus: the count under other processes' load", () => {
  /** readings of others' load, every 200 ms, from a start; the counts after each */
  const run = (usable: number, readings: number[], from = usable): number[] => {
    let st = { free: from, calmMs: 0 };
    return readings.map((busy) => (st = nextFreeCpus(st, usable, busy, 200)).free);
  };

  test("an idle machine leaves every usable CPU", () => {
    assert.deepEqual(run(2, [0, 0, 0]), [2, 2, 2]);
    assert.deepEqual(run(16, [0.05, 0.1]), [16, 16]);
  });

  test("one CPU-bound competitor on 2 cores: 1 thread once its load has lasted DROP_AFTER_MS, whether we spin 2 threads or 1", () => {
    assert.equal(DROP_AFTER_MS, 400);
    // with 2 spinning threads of ours and the competitor on 2 cores, the competitor gets about 2/3 of a CPU
    assert.deepEqual(run(2, [0.67, 0.67]), [2, 1]);
    assert.deepEqual(run(2, [1.0, 1.0, 1.0, 1.0]), [2, 1, 1, 1]);
  });

  test("a single busy reading (the tail of work that already ended) leaves the count", () => {
    assert.deepEqual(run(2, [0.9, 0, 0, 0.8, 0.1, 0, 1, 0]), [2, 2, 2, 2, 2, 2, 2, 2]);
  });

  test("back to 2 threads only after RISE_AFTER_MS of calm", () => {
    const calm = Array(RISE_AFTER_MS / 200).fill(0.02);
    assert.deepEqual(run(2, [1, 1, ...calm]), [2, 1, ...calm.map((_, i) => (i === calm.length - 1 ? 2 : 1))]);
  });

  test("once down, bursts of other work under a second apart keep it at 1 thread", () => {
    const bursty = [1, 0, 0, 0, 1, 0, 0, 0, 0.9, 0, 0, 0, 0.5, 0, 0];
    assert.deepEqual(run(2, bursty, 1), bursty.map(() => 1));
  });

  test("a band between FREE_BELOW and BUSY_ABOVE keeps the count where it was (no flapping)", () => {
    assert.deepEqual(run(2, [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]), [2, 2, 2, 2, 2, 2]);
    assert.deepEqual(run(2, [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], 1), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(run(2, [0.35, 0.35]), [2, 1]);
  });

  test("never below 1 nor above the usable CPUs", () => {
    assert.deepEqual(run(2, [7.5, 7.5]), [2, 1]);
    assert.deepEqual(run(4, [0], 9), [4]);
    assert.deepEqual(run(4, [Number.NaN]), [4]);
  });

  test("on 16 CPUs with 5 busy elsewhere, 11 are left; at 2 busy, 14 after the calm", () => {
    assert.deepEqual(run(16, [5, 5]), [16, 11]);
    assert.equal(run(16, [5, 5, ...Array(RISE_AFTER_MS / 200).fill(2)]).at(-1), 14);
  });
});

test("parseCpuList reads Linux CPU lists", () => {
  assert.deepEqual(parseCpuList("0-1"), [0, 1]);
  assert.deepEqual(parseCpuList("0-2,8,10-11\n"), [0, 1, 2, 8, 10, 11]);
  assert.equal(parseCpuList("x"), undefined);
  assert.equal(parseCpuList("3-1"), undefined);
});

describe("readCpuFacts over a /proc and /sys tree", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "mf-cpu-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function tree(name: string, files: Record<string, string>): Promise<string> {
    const base = join(root, name);
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(base, path)), { recursive: true });
      await writeFile(join(base, path), text);
    }
    return base;
  }

  const status = (list: string) => `Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t${list}\nMems_allowed_list:\t0\n`;
  const topo = (cpu: number, siblings: string) => ({ [`sys/devices/system/cpu/cpu${cpu}/topology/thread_siblings_list`]: `${siblings}\n` });

  test("cgroup v2: affinity, SMT siblings and the lowest cpu.max up the hierarchy", async () => {
    const base = await tree("v2", {
      "proc/self/status": status("0-3"),
      ...topo(0, "0,2"), ...topo(1, "1,3"), ...topo(2, "0,2"), ...topo(3, "1,3"),
      "proc/self/cgroup": "0::/system.slice/mf.service\n",
      "proc/self/mountinfo": "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
      "sys/fs/cgroup/cpu.max": "max 100000\n",
      "sys/fs/cgroup/system.slice/cpu.max": "300000 100000\n",
      "sys/fs/cgroup/system.slice/mf.service/cpu.max": "max 100000\n",
    });
    const f = readCpuFacts(base);
    assert.deepEqual(f.allowed, [0, 1, 2, 3]);
    assert.equal(f.quota, 3);
    const p = planThreads(f);
    assert.deepEqual([p.usable, p.physical, p.threads], [3, 2, 2]);
  });

  test("cgroup v2 in a container: the namespaced root is the mount's own cpu.max", async () => {
    const base = await tree("v2ns", {
      "proc/self/status": status("0-15"),
      "proc/self/cgroup": "0::/\n",
      "proc/self/mountinfo": "700 600 0:30 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n",
      "sys/fs/cgroup/cpu.max": "150000 100000\n",
    });
    const f = readCpuFacts(base);
    assert.equal(f.quota, 1.5);
    assert.deepEqual([planThreads(f).usable, planThreads(f).threads], [1, 1]);
  });

  test("cgroup v1: cpu.cfs_quota_us ÷ cpu.cfs_period_us under a bind-mounted cgroup root", async () => {
    const base = await tree("v1", {
      "proc/self/status": status("0-7"),
      "proc/self/cgroup": "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
      "proc/self/mountinfo":
        "40 30 0:35 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n" +
        "41 30 0:36 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    });
    assert.equal(readCpuFacts(base).quota, 2);
  });

  test("cgroup v1 without a quota (-1), as on this project's machines", async () => {
    const base = await tree("v1none", {
      "proc/self/status": status("0-1"),
      "proc/self/cgroup": "2:cpuacct:/\n1:cpu:/\n",
      "proc/self/mountinfo": "25 24 0:22 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
      "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
      "sys/devices/system/cpu/cpu0/topology/physical_package_id": "0\n",
      "sys/devices/system/cpu/cpu0/topology/core_id": "0\n",
      "sys/devices/system/cpu/cpu1/topology/physical_package_id": "0\n",
      "sys/devices/system/cpu/cpu1/topology/core_id": "1\n",
    });
    const f = readCpuFacts(base);
    assert.equal(f.quota, undefined);
    assert.deepEqual([...f.cores!.values()], ["0:0", "0:1"]);
    assert.deepEqual([planThreads(f).usable, planThreads(f).threads], [2, 2]);
  });

  test("no /proc at all: node's own counts", async () => {
    const f = readCpuFacts(join(root, "nothing-here"));
    assert.equal(f.allowed, undefined);
    assert.equal(f.quota, undefined);
    assert.ok(planThreads(f).threads >= 1);
  });

  test("CpuLoadMeter: busy ticks of the allowed CPUs less this process's own, in CPUs", async () => {
    const stat = (c0: number[], c1: number[], c2: number[]) =>
      `cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 ${c0.join(" ")}\ncpu1 ${c1.join(" ")}\ncpu2 ${c2.join(" ")}\nintr 1\n`;
    const self = (utime: number, stime: number) => `4242 (node (mf)) S 1 4242 4242 0 -1 4194560 100 0 0 0 ${utime} ${stime} 0 0 20 0 12 0 1 1 1`;
    const base = await tree("meter", { "proc/stat": stat([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]), "proc/self/stat": self(0, 0) });
    const meter = new CpuLoadMeter([0, 1], base);
    assert.equal(meter.othersBusy(), undefined);
    // 100 ticks per CPU pass: CPU 0 and 1 are busy 100 + 60 ticks (user, system), 80 of which are ours;
    // CPU 2 is outside the affinity mask and does not count
    await writeFile(join(base, "proc/stat"), stat([90, 0, 10, 0, 0, 0, 0, 0], [50, 0, 0, 30, 10, 0, 0, 10], [100, 0, 0, 0]));
    await writeFile(join(base, "proc/self/stat"), self(70, 10));
    assert.equal(meter.othersBusy()!.toFixed(2), "0.80");
  });
});
