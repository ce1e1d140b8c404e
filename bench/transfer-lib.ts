/**
 * What the transfer benchmarks share: a model of one big random blob (in a store, and as an OCI layout
 * for skopeo), timed commands, and a process's peak RSS.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, readFileSync } from "node:fs";
import { link, mkdir, rm, writeFile } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import { digestOf } from "../core/digest.js";
import { serializeManifest } from "../core/manifest.js";
import { MediaType } from "../core/mediatypes.js";
import { parseRef } from "../core/reference.js";
import { LocalStore } from "../core/store.js";
import { toOciManifest } from "../registry/client/index.js";

async function randomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let done = 0; done < size; done += 16 << 20) {
    if (!out.write(randomBytes(Math.min(16 << 20, size - done)))) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

export interface Model {
  store: LocalStore;
  /** an OCI image layout of the same blobs (hard links), for skopeo */
  layout: string;
}

/** A store holding `bench/model:latest` whose weights are `size` random bytes, and the same image as an OCI layout. */
export async function makeModel(dir: string, size: number): Promise<Model> {
  const store = new LocalStore(join(dir, "store"));
  const raw = join(dir, "weights.bin");
  await mkdir(dir, { recursive: true });
  await randomFile(raw, size);
  const w = await store.importFile(raw, { link: true });
  await rm(raw);
  const config = await store.writeBlob(JSON.stringify({ model_format: "gguf", model_family: "llama", model_families: ["llama"], model_type: "1B", file_type: "F16", architecture: "amd64", os: "linux" }));
  const manifest = serializeManifest({
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: MediaType.dockerConfig, digest: config.digest, size: config.size },
    layers: [{ mediaType: MediaType.model, digest: w.digest, size: w.size }],
  });
  await store.writeManifest(parseRef("bench/model:latest"), manifest);

  const layout = join(dir, "layout");
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  for (const d of [config.digest, w.digest]) await link(store.blobPath(d), join(layout, "blobs", "sha256", d.slice(7)));
  const oci = toOciManifest(JSON.parse(manifest.toString()));
  const od = digestOf(oci);
  await writeFile(join(layout, "blobs", "sha256", od.slice(7)), oci);
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(layout, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: MediaType.ociManifest, digest: od, size: oci.length, annotations: { "org.opencontainers.image.ref.name": "latest" } }],
  }));
  return { store, layout };
}

/** Runs a command to completion; resolves with its wall time in seconds. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
    child.on("close", (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err}`))));
  });
}

export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}
