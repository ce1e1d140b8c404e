/**
 * transfer: push and pull of a 2 GiB model over 127.0.0.1, four pairs measured side by side in one run,
 * in rotating order, each transfer against a freshly started registry (nothing to skip or mount) and each
 * pull into a fresh destination:
 *
 *   mf client → mf registry        `mf push` / `mf pull` (the built binary) ↔ `mf registry serve`
 *   mf client → distribution       `mf push` / `mf pull` ↔ Debian's docker-registry (CNCF distribution 2.8)
 *   skopeo → mf registry           `skopeo copy` of the same layers in an OCI manifest (oci: layout)
 *   skopeo → distribution          the peer pair every ratio is taken against
 *
 * Both sides verify digests (the registries on upload, mf and skopeo on download). The registries' peak
 * RSS is read from /proc/<pid>/status (VmHWM) after each push and pull; the mf registry's is also taken
 * with a small blob, to show it is flat in blob size. Figures: medians of `--reps` runs (min–max).
 *
 *   npm run bench -- transfer [--reps 3] [--gib 2] [--small-mib 64]
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { hasCommand, spawnMfRegistry, startDistribution, tempDir } from "../test/registry/peers.js";
import { ROOT, fmtStat, report, stat, table, type Stat } from "./lib.js";
import { makeModel, peakRssMb, run, type Model } from "./transfer-lib.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "transfer"),
  options: {
    reps: { type: "string", default: "3" },
    gib: { type: "string", default: "2" },
    "small-mib": { type: "string", default: "64" },
  },
});
const reps = Number(values.reps);
const SIZE = Math.round(Number(values.gib) * 2 ** 30);
const SMALL = Math.round(Number(values["small-mib"]) * 2 ** 20);
const MF = join(ROOT, "dist", "cli", "main.js");

if (!hasCommand("skopeo")) throw new Error("skopeo is not installed (apt-get install skopeo)");

interface Registry {
  host: string;
  pid: number;
  stop(): Promise<void>;
}

type RegistryKind = "mf registry" | "distribution";
type ClientKind = "mf client" | "skopeo";

async function startRegistry(kind: RegistryKind): Promise<Registry> {
  if (kind === "mf registry") {
    const root = await tempDir("mf-bench-root-");
    process.env.MF_TEST_CLI = MF;
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
  }
  const d = await startDistribution();
  if (!d) throw new Error("docker-registry is not installed (apt-get install docker-registry)");
  return { host: new URL(d.base).host, pid: d.child.pid!, stop: () => d.close() };
}

interface Sample {
  push: number;
  pull: number;
  rss: number;
}

/** One push and one pull of `model` between `client` and a fresh `registry`. */
async function transfer(client: ClientKind, registry: RegistryKind, model: Model, work: string): Promise<Sample> {
  const reg = await startRegistry(registry);
  const dst = join(work, "dst");
  try {
    let push: number;
    let pull: number;
    if (client === "mf client") {
      const name = `${reg.host}/bench/model:latest`;
      const env = { ...process.env, MF_MODELS: model.store.root };
      await run(process.execPath, [MF, "cp", "bench/model:latest", name], env);
      push = await run(process.execPath, [MF, "push", "-q", "--insecure", name], env);
      pull = await run(process.execPath, [MF, "pull", "-q", "--insecure", name], { ...process.env, MF_MODELS: dst });
    } else {
      const ref = `docker://${reg.host}/bench/model:latest`;
      push = await run("skopeo", ["--insecure-policy", "copy", "-q", "--dest-tls-verify=false", `oci:${model.layout}:latest`, ref]);
      pull = await run("skopeo", ["--insecure-policy", "copy", "-q", "--src-tls-verify=false", ref, `oci:${dst}:latest`]);
    }
    return { push, pull, rss: peakRssMb(reg.pid) };
  } finally {
    await reg.stop();
    await rm(dst, { recursive: true, force: true });
  }
}

const PAIRS: [ClientKind, RegistryKind][] = [
  ["mf client", "mf registry"],
  ["mf client", "distribution"],
  ["skopeo", "mf registry"],
  ["skopeo", "distribution"],
];
const label = ([c, r]: [ClientKind, RegistryKind]) => `${c} → ${r}`;

const work = await tempDir("mf-bench-transfer-");
try {
  process.stderr.write(`transfer: generating a ${(SIZE / 2 ** 30).toFixed(2)} GiB model and a ${(SMALL / 2 ** 20).toFixed(0)} MiB one…\n`);
  const big = await makeModel(join(work, "big"), SIZE);
  const small = await makeModel(join(work, "small"), SMALL);
  const samples = new Map<string, Sample[]>(PAIRS.map((p) => [label(p), []]));
  const smallRss: number[] = [];
  for (let i = 0; i < reps; i++) {
    // rotate the order so no pair always runs first (cold) or last
    for (let k = 0; k < PAIRS.length; k++) {
      const pair = PAIRS[(i + k) % PAIRS.length]!;
      const s = await transfer(pair[0], pair[1], big, work);
      samples.get(label(pair))!.push(s);
      process.stderr.write(`rep ${i + 1}/${reps} ${label(pair)}: push ${(SIZE / 1e6 / s.push).toFixed(0)} MB/s, pull ${(SIZE / 1e6 / s.pull).toFixed(0)} MB/s, registry peak RSS ${s.rss.toFixed(0)} MB\n`);
    }
    smallRss.push((await transfer("mf client", "mf registry", small, work)).rss);
  }

  const tput = (xs: number[]) => stat(xs.map((s) => SIZE / 1e6 / s));
  const st = new Map<string, { push: Stat; pull: Stat; rss: Stat }>();
  for (const [k, v] of samples) st.set(k, { push: tput(v.map((s) => s.push)), pull: tput(v.map((s) => s.pull)), rss: stat(v.map((s) => s.rss)) });
  const base = st.get("skopeo → distribution")!;
  const x = (a: Stat, b: Stat) => `${(a.median / b.median).toFixed(2)}×`;
  const rows = [...st].map(([k, v]) => [k, fmtStat(v.push, 0), fmtStat(v.pull, 0), x(v.push, base.push), x(v.pull, base.pull), fmtStat(v.rss, 0)]);
  const mfmf = st.get("mf client → mf registry")!;
  const skmf = st.get("skopeo → mf registry")!;
  const mfRss = stat([...samples.get("mf client → mf registry")!, ...samples.get("skopeo → mf registry")!].map((s) => s.rss));
  const smallSt = stat(smallRss);
  const verdict = (ok: boolean) => (ok ? "met" : "**missed**");
  const md = [
    `## transfer: ${(SIZE / 2 ** 30).toFixed(2)} GiB model, one blob, push and pull over 127.0.0.1`,
    "",
    `Throughput in MB/s (10^6 bytes), medians of ${reps} runs (min–max); ratios are of medians against skopeo ↔ distribution. ` +
      "Fresh registry per transfer; pulls into a fresh store or layout; digests verified on both sides. mf's side is the built binary (`mf push` / `mf pull`, separate processes).",
    "",
    table(["pair", "push MB/s", "pull MB/s", "push ÷ skopeo↔distribution", "pull ÷ skopeo↔distribution", "registry peak RSS MB"], rows),
    "",
    `- mf ↔ mf push ${x(mfmf.push, base.push)}, pull ${x(mfmf.pull, base.pull)} of skopeo ↔ distribution (goal ≥ 3×): push ${verdict(mfmf.push.median >= 3 * base.push.median)}, pull ${verdict(mfmf.pull.median >= 3 * base.pull.median)}`,
    `- skopeo → mf registry push ${x(skmf.push, base.push)} of skopeo → distribution (goal ≥ 1.5×): ${verdict(skmf.push.median >= 1.5 * base.push.median)}`,
    `- mf registry peak RSS: ${fmtStat(mfRss, 0)} MB with the ${(SIZE / 2 ** 30).toFixed(2)} GiB blob, ${fmtStat(smallSt, 0)} MB with a ${(SMALL / 2 ** 20).toFixed(0)} MiB one (goal < 100 MB and flat): ${verdict(mfRss.max < 100 && mfRss.median - smallSt.median < 10)}`,
    "",
    `Command: \`npm run bench -- transfer --reps ${reps} --gib ${values.gib}\``,
  ].join("\n");
  report("transfer", md);
} finally {
  await rm(work, { recursive: true, force: true });
}
