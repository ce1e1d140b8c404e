/**
 * The system facts the thread policy (`threads.ts`) works from, read from Linux's /proc and /sys: the
 * CPU affinity (`Cpus_allowed_list`), each CPU's core (`topology/thread_siblings_list`, else package and
 * core id), the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` ÷ `cpu.cfs_period_us`, the lowest
 * from this process's cgroup up to its mount's root); and `CpuLoadMeter`, the CPUs other processes keep
 * busy. Elsewhere (or where a file is missing) the facts are what node's `os` knows. `root` moves the
 * file system, for tests.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { posix } from "node:path";
import type { CpuFacts } from "./threads.js";

type Read = (path: string) => string | undefined;

function reader(root: string): Read {
  return (path) => {
    try {
      return readFileSync(posix.join(root, path), "utf8");
    } catch {
      return undefined;
    }
  };
}

/** A Linux CPU list (`0-3,8,10-11`) → ids; undefined when it does not parse. */
export function parseCpuList(text: string): number[] | undefined {
  const out: number[] = [];
  for (const part of text.trim().split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 1 << 16) return undefined;
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out.length ? out : undefined;
}

function allowedCpus(read: Read): number[] | undefined {
  const m = /^Cpus_allowed_list:\s*(\S+)\s*$/m.exec(read("/proc/self/status") ?? "");
  return m ? parseCpuList(m[1]!) : undefined;
}

function coresOf(read: Read, ids: readonly number[]): Map<number, string> | undefined {
  const cores = new Map<number, string>();
  for (const id of ids) {
    const dir = `/sys/devices/system/cpu/cpu${id}/topology`;
    const siblings = read(`${dir}/thread_siblings_list`)?.trim();
    if (siblings) {
      cores.set(id, siblings);
      continue;
    }
    const pkg = read(`${dir}/physical_package_id`)?.trim();
    const core = read(`${dir}/core_id`)?.trim();
    if (pkg === undefined || core === undefined) return undefined;
    cores.set(id, `${pkg}:${core}`);
  }
  return cores;
}

interface Mount {
  /** the cgroup path at the mount's root (not "/" inside a container's cgroup namespace at times) */
  root: string;
  point: string;
}

/** cgroup mounts from /proc/self/mountinfo: the v2 one, and the v1 one that holds the cpu controller. */
function cgroupMounts(read: Read): { v2?: Mount; v1cpu?: Mount } {
  const out: { v2?: Mount; v1cpu?: Mount } = {};
  for (const line of (read("/proc/self/mountinfo") ?? "").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const f = left.split(" ");
    const [fstype, , superOpts] = right.split(" ");
    const m: Mount = { root: unescape(f[3] ?? "/"), point: unescape(f[4] ?? "") };
    if (fstype === "cgroup2") out.v2 ??= m;
    else if (fstype === "cgroup" && (superOpts ?? "").split(",").includes("cpu")) out.v1cpu ??= m;
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as octal */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The directories from this process's cgroup up to the mount point, innermost first. */
function cgroupDirs(mount: Mount, path: string): string[] {
  let rel = path;
  if (mount.root !== "/" && (rel === mount.root || rel.startsWith(mount.root + "/"))) rel = rel.slice(mount.root.length);
  const parts = rel.split("/").filter(Boolean);
  const dirs: string[] = [];
  for (let i = parts.length; i >= 0; i--) dirs.push(posix.join(mount.point, ...parts.slice(0, i)));
  return dirs;
}

function cpuQuota(read: Read): number | undefined {
  const cgroup = read("/proc/self/cgroup");
  if (!cgroup) return undefined;
  const mounts = cgroupMounts(read);
  let lowest: number | undefined;
  const take = (q: number | undefined) => {
    if (q !== undefined && q > 0 && (lowest === undefined || q < lowest)) lowest = q;
  };
  for (const line of cgroup.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, controllers, path] = m;
    if (id === "0" && controllers === "" && mounts.v2) {
      for (const dir of cgroupDirs(mounts.v2, path!)) {
        const max = read(`${dir}/cpu.max`)?.trim().split(/\s+/);
        if (max && max[0] !== "max") take(Number(max[0]) / Number(max[1] ?? 100000));
      }
    } else if (controllers!.split(",").includes("cpu") && mounts.v1cpu) {
      for (const dir of cgroupDirs(mounts.v1cpu, path!)) {
        const quota = Number(read(`${dir}/cpu.cfs_quota_us`)?.trim());
        const period = Number(read(`${dir}/cpu.cfs_period_us`)?.trim());
        if (quota > 0 && period > 0) take(quota / period);
      }
    }
  }
  return lowest;
}

/** What this process may run on, as far as the system says. */
export function readCpuFacts(root = "/"): CpuFacts {
  const read = reader(root);
  const allowed = allowedCpus(read);
  return {
    online: cpus().length || 1,
    allowed,
    parallelism: availableParallelism(),
    cores: allowed ? coresOf(read, allowed) : undefined,
    quota: cpuQuota(read),
  };
}

/** Busy and total ticks of the given CPUs in /proc/stat (all CPUs when `ids` is undefined). */
function cpuTicks(stat: string, ids: ReadonlySet<number> | undefined): { busy: number; total: number; n: number } | undefined {
  let busy = 0;
  let total = 0;
  let n = 0;
  for (const line of stat.split("\n")) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m || (ids && !ids.has(Number(m[1])))) continue;
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    const v = m[2]!.trim().split(/\s+/).slice(0, 8).map(Number);
    if (v.length < 4 || v.some((x) => !Number.isFinite(x))) return undefined;
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    busy += user + nice + system + irq + softirq + steal;
    total += user + nice + system + idle + iowait + irq + softirq + steal;
    n++;
  }
  return n ? { busy, total, n } : undefined;
}

/**
 * User + system ticks (USER_HZ) from a proc(5) stat line: /proc/self/stat (all of this process's threads)
 * or /proc/<pid>/task/<tid>/stat (one thread).
 */
export function statTicks(stat: string): number | undefined {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields 14 and 15 (utime, stime) of proc(5), counted from the state (field 3) after the command name
  const t = Number(f[11]) + Number(f[12]);
  return Number.isFinite(t) ? t : undefined;
}

/**
 * The CPUs that other processes keep busy on the CPUs this process may use: between two calls, the busy
 * ticks of those CPUs less this process's own, in CPUs. undefined on the first call and where /proc
 * cannot be read.
 */
export class CpuLoadMeter {
  private readonly read: Read;
  private readonly ids: ReadonlySet<number> | undefined;
  private last: { busy: number; total: number; n: number; self: number } | undefined;

  constructor(allowed: readonly number[] | undefined, root = "/") {
    this.read = reader(root);
    this.ids = allowed?.length ? new Set(allowed) : undefined;
  }

  othersBusy(): number | undefined {
    const all = this.read("/proc/stat");
    const own = this.read("/proc/self/stat");
    const t = all === undefined ? undefined : cpuTicks(all, this.ids);
    const self = own === undefined ? undefined : statTicks(own);
    if (!t || self === undefined) return undefined;
    const prev = this.last;
    this.last = { ...t, self };
    if (!prev || prev.n !== t.n || t.total <= prev.total) return undefined;
    const perCpu = (t.total - prev.total) / t.n;
    return Math.max(0, (t.busy - prev.busy - (self - prev.self)) / perCpu);
  }
}
