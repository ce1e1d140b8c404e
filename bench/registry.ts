/**
 * Benchmark (not a test): skopeo push and pull throughput of one big blob into `mf registry serve` and
 * into Debian's docker-registry (CNCF distribution 2.8) in the same run, and each registry's peak RSS
 * during the push (VmHWM of a freshly started process). Medians of a few runs, each on a fresh root so
 * no blob is reused or mounted.
 *
 *   node --import tsx bench/registry.ts [--sizes 64M,2G] [--runs 3]
 *
 * The registry is `mf registry serve` started like the tests start it: cli/main.ts through tsx, or the
 * entry in MF_TEST_CLI. Measure the shipped binary with `npm run build` and MF_TEST_CLI=dist/cli/main.js
 * (tsx's loader alone adds ~25 MB of RSS).
 *
 * Goal (issue 5): mf push ≥ 1.5× distribution's, peak RSS < 100 MB and flat from 64 MiB to 2 GiB.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { writeOciLayout } from "../test/registry/oci-layout.js";
import { hasCommand, spawnMfRegistry, startDistribution, tempDir } from "../test/registry/peers.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

function bytesOf(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s)!;
  return Number(m[1]) * ({ "": 1, K: 1024, M: 1 << 20, G: 1 << 30 } as Record<string, number>)[m[2]!.toUpperCase()]!;
}

function skopeo(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("skopeo", ["--insecure-policy", ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("close", (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`skopeo ${args.join(" ")}: ${err}`))));
  });
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface Sample { push: number; pull: number; rss: number }

interface Target { name: string; start(): Promise<{ host: string; pid: number; stop(): Promise<void> }> }

const targets: Target[] = [
  {
    name: "mf registry serve",
    async start() {
      const root = await tempDir("mf-bench-root-");
      const r = await spawnMfRegistry(root);
      return {
        host: new URL(r.base).host,
        pid: r.child.pid!,
        stop: async () => {
          r.child.kill("SIGTERM");
          await r.exited;
          await rm(root, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "distribution 2.8",
    async start() {
      const d = await startDistribution();
      if (!d) throw new Error("docker-registry is not installed");
      return { host: new URL(d.base).host, pid: d.child.pid!, stop: () => d.close() };
    },
  },
];

async function main(): Promise<void> {
  if (!hasCommand("skopeo")) throw new Error("skopeo is not installed");
  const sizes = arg("sizes", "64M,2G").split(",").map(bytesOf);
  const runs = Number(arg("runs", "3"));
  const work = await tempDir("mf-bench-");
  const rows: string[] = [];
  try {
    for (const size of sizes) {
      const src = join(work, `src-${size}`);
      await writeOciLayout(src, "latest", size);
      const results = new Map<string, Sample[]>();
      for (let i = 0; i < runs; i++) {
        for (const t of targets) {
          const reg = await t.start();
          try {
            const ref = `docker://${reg.host}/bench/model:latest`;
            const push = await skopeo(["copy", "--dest-tls-verify=false", `oci:${src}:latest`, ref]);
            const rss = peakRssMb(reg.pid);
            const dst = join(work, "dst");
            const pull = await skopeo(["copy", "--src-tls-verify=false", ref, `oci:${dst}:latest`]);
            await rm(dst, { recursive: true, force: true });
            const mbps = (secs: number) => size / 1e6 / secs;
            const list = results.get(t.name) ?? [];
            list.push({ push: mbps(push), pull: mbps(pull), rss });
            results.set(t.name, list);
            process.stderr.write(`${(size / 2 ** 20).toFixed(0)} MiB ${t.name} run ${i + 1}: push ${mbps(push).toFixed(0)} MB/s, pull ${mbps(pull).toFixed(0)} MB/s, peak RSS ${rss.toFixed(0)} MB\n`);
          } finally {
            await reg.stop();
          }
        }
      }
      await rm(src, { recursive: true, force: true });
      const med = (name: string, k: keyof Sample) => median(results.get(name)!.map((s) => s[k]));
      const [mf, dist] = targets.map((t) => t.name) as [string, string];
      for (const name of [mf, dist]) {
        rows.push(`| ${(size / 2 ** 20).toFixed(0)} MiB | ${name} | ${med(name, "push").toFixed(0)} | ${med(name, "pull").toFixed(0)} | ${med(name, "rss").toFixed(0)} |`);
      }
      rows.push(`| ${(size / 2 ** 20).toFixed(0)} MiB | ratio mf / distribution | ${(med(mf, "push") / med(dist, "push")).toFixed(2)}× | ${(med(mf, "pull") / med(dist, "pull")).toFixed(2)}× | |`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`\nskopeo copy, medians of ${runs} runs (MB = 10^6 bytes)\n\n| blob | registry | push MB/s | pull MB/s | peak RSS during push (MB) |\n|---|---|---|---|---|\n${rows.join("\n")}\n`);
}

await main();
