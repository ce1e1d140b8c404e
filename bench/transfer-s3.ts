/**
 * s3: push and pull of a 2 GiB model with the `mf` binary through `mf registry serve` on S3 (Ceph's
 * radosgw on 127.0.0.1, bluestore), with one replica and with two behind a round-robin balancer (each
 * request to the other replica, as nginx does), beside the same registry on the filesystem, measured in
 * one run in rotating order. Every transfer starts against fresh registries on a fresh bucket prefix (or
 * root) and pulls into a fresh store; digests are verified on both sides. Pulls on S3 are redirected to
 * pre-signed S3 URLs, so the bytes come from radosgw itself.
 *
 * The engine is the one MF_TEST_S3_ENDPOINT (with MF_TEST_S3_BUCKET and the AWS variables) names, else a
 * throwaway cluster this script starts with test/services/ceph.sh and stops afterwards.
 *
 *   npm run bench -- s3 [--reps 3] [--gib 2] [--part-mib 16]
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { spawnMfRegistry, tempDir } from "../test/registry/peers.js";
import { startRoundRobin } from "../test/registry/round-robin.js";
import { s3PeerFrom, type S3Peer } from "../test/registry/s3-peer.js";
import { replicaSet } from "../test/registry/s3-replicas.js";
import { ROOT, fmtStat, report, stat, table, type Stat } from "./lib.js";
import { makeModel, run, type Model } from "./transfer-lib.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "s3"),
  options: {
    reps: { type: "string", default: "3" },
    gib: { type: "string", default: "2" },
    "part-mib": { type: "string", default: "16" },
  },
  strict: false,
});
const reps = Number(values.reps);
const SIZE = Math.round(Number(values.gib) * 2 ** 30);
const PART = `${Number(values["part-mib"])}MiB`;
const MF = join(ROOT, "dist", "cli", "main.js");
const CEPH = join(ROOT, "test", "services", "ceph.sh");

interface Engine {
  peer: S3Peer;
  stop(): Promise<void>;
}

/** The S3 engine named by the environment, else a throwaway Ceph started here. */
async function engine(work: string): Promise<Engine> {
  const named = s3PeerFrom(process.env);
  if (named) return { peer: named, stop: async () => {} };
  if (!existsSync("/usr/bin/radosgw")) throw new Error("no S3 engine: set MF_TEST_S3_ENDPOINT (npm run services) or install ceph-mon ceph-osd radosgw ceph-common");
  const env = { ...process.env, CEPH_DIR: join(work, "ceph") };
  process.stderr.write("s3: starting a throwaway Ceph (test/services/ceph.sh up)…\n");
  const exports = execFileSync("bash", [CEPH, "up"], { env, stdio: ["ignore", "pipe", "inherit"] }).toString();
  const vars: Record<string, string> = {};
  for (const m of exports.matchAll(/^export (\w+)=(.*)$/gm)) vars[m[1]!] = m[2]!;
  return {
    peer: s3PeerFrom(vars)!,
    stop: async () => {
      execFileSync("bash", [CEPH, "down"], { env, stdio: ["ignore", "ignore", "inherit"] });
    },
  };
}

interface Target {
  host: string;
  stop(): Promise<void>;
}

type Setup = "filesystem" | "S3, 1 replica" | "S3, 2 replicas + balancer";
const SETUPS: Setup[] = ["filesystem", "S3, 1 replica", "S3, 2 replicas + balancer"];

async function start(setup: Setup, peer: S3Peer): Promise<Target> {
  if (setup === "filesystem") {
    const root = await tempDir("mf-bench-s3-fs-");
    const r = await spawnMfRegistry(root, [], 30_000, { entry: MF });
    return { host: new URL(r.base).host, stop: async () => { r.child.kill("SIGTERM"); await r.exited; await rm(root, { recursive: true, force: true }); } };
  }
  const set = await replicaSet("bench", peer);
  const first = await set.start(["--s3-part-size", PART]);
  if (setup === "S3, 1 replica") return { host: first.host, stop: () => set.close() };
  const second = await set.start(["--s3-part-size", PART]);
  const lb = await startRoundRobin([first.base, second.base]);
  return { host: lb.host, stop: async () => { await lb.close(); await set.close(); } };
}

async function transfer(setup: Setup, peer: S3Peer, model: Model, work: string): Promise<{ push: number; pull: number }> {
  const target = await start(setup, peer);
  const dst = join(work, "dst");
  try {
    const name = `${target.host}/bench/model:latest`;
    const env = { ...process.env, MF_MODELS: model.store.root };
    await run(process.execPath, [MF, "cp", "bench/model:latest", name], env);
    const push = await run(process.execPath, [MF, "push", "-q", "--insecure", name], env);
    const pull = await run(process.execPath, [MF, "pull", "-q", "--insecure", name], { ...process.env, MF_MODELS: dst });
    return { push, pull };
  } finally {
    await target.stop();
    await rm(dst, { recursive: true, force: true });
  }
}

const work = await tempDir("mf-bench-s3-");
let eng: Engine | undefined;
try {
  eng = await engine(work);
  process.stderr.write(`s3: generating a ${(SIZE / 2 ** 30).toFixed(2)} GiB model…\n`);
  const model = await makeModel(join(work, "model"), SIZE);
  const samples = new Map<Setup, { push: number; pull: number }[]>(SETUPS.map((s) => [s, []]));
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < SETUPS.length; k++) {
      const setup = SETUPS[(i + k) % SETUPS.length]!;
      const s = await transfer(setup, eng.peer, model, work);
      samples.get(setup)!.push(s);
      process.stderr.write(`rep ${i + 1}/${reps} ${setup}: push ${(SIZE / 1e6 / s.push).toFixed(0)} MB/s, pull ${(SIZE / 1e6 / s.pull).toFixed(0)} MB/s\n`);
    }
  }
  const tput = (xs: number[]) => stat(xs.map((s) => SIZE / 1e6 / s));
  const st = new Map<Setup, { push: Stat; pull: Stat }>();
  for (const [k, v] of samples) st.set(k, { push: tput(v.map((s) => s.push)), pull: tput(v.map((s) => s.pull)) });
  const fs = st.get("filesystem")!;
  const x = (a: Stat, b: Stat) => `${(a.median / b.median).toFixed(2)}×`;
  const rows = [...st].map(([k, v]) => [`mf → mf registry, ${k}`, fmtStat(v.push, 0), fmtStat(v.pull, 0), x(v.push, fs.push), x(v.pull, fs.pull)]);
  const md = [
    `## s3: ${(SIZE / 2 ** 30).toFixed(2)} GiB model through mf registry on S3 (Ceph radosgw, one node) and on the filesystem`,
    "",
    `Throughput in MB/s (10^6 bytes), medians of ${reps} runs (min–max); ratios are of medians against the filesystem registry. ` +
      `\`mf push\` / \`mf pull\` (the built binary, 64 MiB chunks) against fresh registries; S3 part size ${PART}; ` +
      "the balancer sends each request to the next replica, so consecutive chunks of one upload land on different replicas. " +
      "S3 pulls follow the registry's 307 to a pre-signed radosgw URL. Ceph, the registries, the balancer and the client share this machine.",
    "",
    table(["setup", "push MB/s", "pull MB/s", "push ÷ filesystem", "pull ÷ filesystem"], rows),
    "",
    `Command: \`npm run bench -- s3 --reps ${reps} --gib ${values.gib} --part-mib ${values["part-mib"]}\``,
  ].join("\n");
  report("s3", md);
} finally {
  await eng?.stop();
  await rm(work, { recursive: true, force: true });
}
