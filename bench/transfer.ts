/**
 * Push and pull throughput of a 2 GiB model (MF_BENCH_BYTES to change the size):
 *   mf client ↔ mf registry (`mf registry serve`, its own process)
 *   mf client ↔ distribution (Debian's docker-registry 2.8)
 *   skopeo ↔ distribution (skopeo 1.9, `oci:` layout ↔ `docker://`; the same layers in an OCI manifest)
 * Every transfer starts against a fresh registry (no blob already there) and, for pulls, a fresh
 * destination; both sides verify digests (the registries on upload, mf and skopeo on download).
 * Run: `node --import tsx bench/transfer.ts` (MF_BENCH_CLI=dist/cli/main.js to serve from the build).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { link, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { once } from "node:events";
import { MediaType } from "../core/mediatypes.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { serializeManifest } from "../core/manifest.js";
import { RegistryClient, toOciManifest } from "../registry/client/index.js";
import { spawnMfRegistry, startDistribution, tempDir } from "../test/registry/peers.js";
import { report, table } from "./lib.js";

const SIZE = Number(process.env.MF_BENCH_BYTES ?? 2 * 1024 ** 3);
const MB = 1e6;

async function randomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  const chunk = 16 << 20;
  for (let done = 0; done < size; done += chunk) {
    if (!out.write(randomBytes(Math.min(chunk, size - done)))) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

/** A store with one model whose weights are `size` random bytes; returns the store and the manifest bytes. */
async function makeModel(dir: string): Promise<{ store: LocalStore; manifest: Buffer }> {
  const store = new LocalStore(join(dir, "src"));
  const raw = join(dir, "weights.bin");
  await randomFile(raw, SIZE);
  const w = await store.importFile(raw, { link: true });
  const config = await store.writeBlob(JSON.stringify({ model_format: "gguf", model_family: "llama", model_families: ["llama"], model_type: "1B", file_type: "F16", architecture: "amd64", os: "linux" }));
  const manifest = serializeManifest({
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: config.digest, size: config.size },
    layers: [{ mediaType: MediaType.model, digest: w.digest, size: w.size }],
  });
  await store.writeManifest(parseRef("bench/model:latest"), manifest);
  return { store, manifest };
}

/** The model as an OCI layout directory (blobs hard-linked) for skopeo. */
async function ociLayout(store: LocalStore, manifest: Buffer, dir: string): Promise<void> {
  const m = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) await link(store.blobPath(d), join(dir, "blobs", "sha256", d.slice(7)));
  const oci = toOciManifest(JSON.parse(manifest.toString()));
  const { digestOf } = await import("../core/digest.js");
  const od = digestOf(oci);
  await writeFile(join(dir, "blobs", "sha256", od.slice(7)), oci);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: od, size: oci.length, annotations: { "org.opencontainers.image.ref.name": "latest" } }] }));
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface Registry {
  host: string;
  close(): Promise<void>;
}

async function mfRegistry(root: string): Promise<Registry> {
  if (process.env.MF_BENCH_CLI) process.env.MF_TEST_CLI = process.env.MF_BENCH_CLI;
  const r = await spawnMfRegistry(root);
  return { host: new URL(r.base).host, close: async () => { r.child.kill("SIGTERM"); await r.exited; await rm(root, { recursive: true, force: true }); } };
}

async function distribution(): Promise<Registry> {
  const d = await startDistribution();
  if (!d) throw new Error("docker-registry is not installed");
  return { host: new URL(d.base).host, close: d.close };
}

async function main(): Promise<void> {
  const dir = await tempDir("mf-bench-transfer-");
  const rows: string[][] = [];
  const mbps = (s: number) => (SIZE / MB / s).toFixed(0);
  const results: Record<string, { push: number; pull: number }> = {};
  try {
    process.stderr.write(`generating ${SIZE} random bytes…\n`);
    const { store, manifest } = await makeModel(dir);
    const client = new RegistryClient();
    const mfPair = async (label: string, start: () => Promise<Registry>) => {
      const reg = await start();
      try {
        const name = `${reg.host}/bench/model:latest`;
        await store.copyModel("bench/model:latest", name);
        const push = await timed(() => client.push(store, name, { insecure: true }));
        const dst = new LocalStore(join(dir, `dst-${label}`));
        const pull = await timed(() => client.pull(dst, name, { insecure: true }));
        await rm(dst.root, { recursive: true, force: true });
        results[label] = { push, pull };
        process.stderr.write(`${label}: push ${push.toFixed(2)} s, pull ${pull.toFixed(2)} s\n`);
      } finally {
        await reg.close();
      }
    };
    await mfPair("mf client ↔ mf registry", () => mfRegistry(join(dir, "mf-registry")));
    await mfPair("mf client ↔ distribution", distribution);
    // skopeo ↔ distribution
    const layout = join(dir, "layout");
    await ociLayout(store, manifest, layout);
    const reg = await distribution();
    try {
      const dest = `docker://${reg.host}/bench/skopeo:latest`;
      const push = await timed(() => execFileSync("skopeo", ["copy", "-q", "--dest-tls-verify=false", `oci:${layout}:latest`, dest], { stdio: ["ignore", "ignore", "inherit"] }));
      const out = join(dir, "skopeo-pulled");
      const pull = await timed(() => execFileSync("skopeo", ["copy", "-q", "--src-tls-verify=false", dest, `oci:${out}:latest`], { stdio: ["ignore", "ignore", "inherit"] }));
      results["skopeo ↔ distribution"] = { push, pull };
      process.stderr.write(`skopeo: push ${push.toFixed(2)} s, pull ${pull.toFixed(2)} s\n`);
    } finally {
      await reg.close();
    }
    await client.close();
    const base = results["skopeo ↔ distribution"]!;
    for (const [label, r] of Object.entries(results)) {
      rows.push([label, `${mbps(r.push)} MB/s (${r.push.toFixed(2)} s)`, `${mbps(r.pull)} MB/s (${r.pull.toFixed(2)} s)`, `${(base.push / r.push).toFixed(2)}×`, `${(base.pull / r.pull).toFixed(2)}×`]);
    }
    const md = [
      `## Transfer throughput, ${(SIZE / 1024 ** 3).toFixed(2)} GiB model, one blob (${new Date().toISOString().slice(0, 10)})`,
      "",
      table(["pair", "push", "pull", "push vs skopeo↔distribution", "pull vs skopeo↔distribution"], rows),
      "",
      "Fresh registry per pair; pulls into a fresh store; digests verified on both sides. " +
        `Machine: ${execFileSync("nproc").toString().trim()} cores; node ${process.version}.`,
    ].join("\n");
    report("transfer", md);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
