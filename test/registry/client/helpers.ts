/** Shared pieces of the registry client tests: models built from generated GGUFs, registries, stores. */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile } from "../../../builder/build.js";
import { describeModel, modelfileOf } from "../../../builder/describe.js";
import { parseRef } from "../../../core/reference.js";
import { LocalStore } from "../../../core/store.js";
import { TINY, writeLlamaGguf } from "../../../fixtures/gguf/index.js";
import { hasCommand, startDistribution, startInProcess, tempDir } from "../peers.js";

export const DISTRIBUTION_MISSING = hasCommand("docker-registry") ? undefined : "docker-registry is not installed (command -v docker-registry failed)";
export const SKOPEO_MISSING = hasCommand("skopeo") ? undefined : "skopeo is not installed (command -v skopeo failed)";

export interface Peer {
  kind: "mf" | "distribution";
  base: string;
  /** host:port, for model names */
  host: string;
  close(): Promise<void>;
}

export async function startPeer(kind: Peer["kind"]): Promise<Peer> {
  if (kind === "mf") {
    const r = await startInProcess();
    return { kind, base: r.base, host: new URL(r.base).host, close: r.close };
  }
  const d = await startDistribution();
  if (!d) throw new Error("docker-registry is not installed");
  return { kind, base: d.base, host: new URL(d.base).host, close: d.close };
}

export const MODELFILE = `FROM ./tiny.gguf
TEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM You are a test.
PARAMETER temperature 0.5
PARAMETER stop <|im_end|>
LICENSE MIT
`;

/**
 * Builds a model from the tiny generated GGUF, tagged `name`. With `adapterBytes`, a random blob of that
 * size rides along as an extra license layer, so a test gets a layer as large as it needs.
 */
export async function buildModel(store: LocalStore, dir: string, name: string, opts: { bigLayerBytes?: number; seed?: number } = {}): Promise<{ digest: string }> {
  const ctx = join(dir, `ctx-${randomBytes(4).toString("hex")}`);
  await mkdir(ctx, { recursive: true });
  await writeLlamaGguf(join(ctx, "tiny.gguf"), { ...TINY, seed: opts.seed ?? TINY.seed });
  let modelfile = MODELFILE;
  if (opts.bigLayerBytes) {
    // a license layer of random printable bytes: large, incompressible, stored verbatim
    const big = randomBytes(opts.bigLayerBytes).toString("base64").slice(0, opts.bigLayerBytes);
    modelfile += `LICENSE """${big}"""\n`;
  }
  await writeFile(join(ctx, "Modelfile"), modelfile);
  const r = await buildFromModelfile(join(ctx, "Modelfile"), { store, tags: [parseRef(name)], contextDir: ctx, homeDir: ctx });
  return { digest: r.digest };
}

/** What `mf show` would say, as data: the rebuilt Modelfile and the details. */
export async function showOf(store: LocalStore, name: string): Promise<unknown> {
  const d = await describeModel(store, await store.readModel(name));
  return { digest: d.model.digest, details: d.details, params: d.params, template: d.template, system: d.system, licenses: d.licenses.length, modelfile: modelfileOf(d).replace(/^FROM .*$/m, "FROM x").replace(/^# .*$/gm, "") };
}

/** stores made by `newStore`, removed when the test file's process exits (each test file runs in its own) */
const stores: string[] = [];
let removeAtExit = false;

export async function newStore(prefix = "mf-client-store-"): Promise<LocalStore> {
  const dir = await tempDir(prefix);
  stores.push(dir);
  if (!removeAtExit) {
    removeAtExit = true;
    process.once("exit", () => {
      for (const d of stores) rmSync(d, { recursive: true, force: true });
    });
  }
  return new LocalStore(dir);
}
