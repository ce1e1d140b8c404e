/**
 * A real runtime server for tests: a temp store with the generated tiny model built from a ChatML
 * Modelfile (as `chat`) and bare (as `raw`), the node-llama-cpp engine with one thread, listening on
 * 127.0.0.1:0. `close()` stops everything and removes the temp directory.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyServerOptions } from "fastify";
import type { BudgetLimits } from "../../grammar/template/index.js";
import { buildFromModelfile } from "../../builder/build.js";
import { resolveConfig } from "../../core/config.js";
import { parseRef } from "../../core/reference.js";
import { LocalStore } from "../../core/store.js";
import { TINY, cachedFixture } from "../../fixtures/gguf/index.js";
import { chooseEngine, type EngineChoice } from "../../runtime/engine/binding.js";
import type { Engine } from "../../runtime/engine/types.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import { type Lease, Scheduler, type SchedulerOptions } from "../../runtime/scheduler.js";
import { ModelResolver, modelRequest } from "../../runtime/server/models.js";
import { resolveRunOptions } from "../../runtime/options.js";
import { type RuntimeServer, type RuntimeServerOptions, createRuntimeServer } from "../../runtime/server/app.js";
import { ROOT } from "../helpers/mf.js";

export const CHAT_MODELFILE = `FROM ./tiny.gguf
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM """You are a test."""
PARAMETER num_ctx 512
PARAMETER stop <|im_start|>
PARAMETER stop <|im_end|>
LICENSE """test licence"""
`;

export interface Harness {
  base: string;
  app: RuntimeServer;
  store: LocalStore;
  dir: string;
  /** the tiny GGUF (in the fixture cache) */
  gguf: string;
  scheduler: Scheduler;
  /** takes a slot of a model exactly as a request without options would */
  hold(model: string): Promise<Lease>;
  close(): Promise<void>;
}

/** The engine `mf engine build` made for this machine (MF_ENGINE_DIR, or ~/.mf/engine), CPU variant, when there is one. */
export function cpuEngine(): Promise<EngineChoice> {
  return chooseEngine({ dir: resolveConfig().engineDir, gpu: false });
}

export async function tinyGguf(): Promise<string> {
  return cachedFixture(TINY, join(ROOT, ".mf-test-cache"));
}

/**
 * Builds images of the tiny model into the store `<dir>/models`, one per tag of `modelfiles` (its
 * Modelfile's text, which names the GGUF `./tiny.gguf`), from the build context `<dir>/ctx`; returns the
 * store.
 */
export async function buildTinyImages(dir: string, modelfiles: Readonly<Record<string, string>>): Promise<LocalStore> {
  const store = new LocalStore(join(dir, "models"));
  const ctx = join(dir, "ctx");
  await mkdir(ctx, { recursive: true });
  await copyFile(await tinyGguf(), join(ctx, "tiny.gguf"));
  for (const [tag, text] of Object.entries(modelfiles)) {
    const file = join(ctx, `${tag}.Modelfile`);
    await writeFile(file, text);
    await buildFromModelfile(file, { store, tags: [parseRef(tag)], contextDir: ctx, homeDir: dir });
  }
  return store;
}

export async function startHarness(
  o: {
    scheduler?: Partial<Omit<SchedulerOptions, "engine">>;
    engine?: Engine;
    origins?: string[];
    logger?: FastifyServerOptions["logger"];
    createRoot?: string;
    templateLimits?: Partial<BudgetLimits>;
    metrics?: RuntimeServerOptions["metrics"];
    serveMetrics?: boolean;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "mf-runtime-"));
  const store = new LocalStore(join(dir, "models"));
  const gguf = await tinyGguf();
  const ctx = join(dir, "ctx");
  const { mkdir, copyFile } = await import("node:fs/promises");
  await mkdir(ctx, { recursive: true });
  await copyFile(gguf, join(ctx, "tiny.gguf"));
  await writeFile(join(ctx, "Modelfile"), CHAT_MODELFILE);
  await writeFile(join(ctx, "Raw.modelfile"), "FROM ./tiny.gguf\nPARAMETER num_ctx 256\n");
  await buildFromModelfile(join(ctx, "Modelfile"), { store, tags: [parseRef("chat")], contextDir: ctx, homeDir: dir });
  await buildFromModelfile(join(ctx, "Raw.modelfile"), { store, tags: [parseRef("raw")], contextDir: ctx, homeDir: dir });
  const engine = o.engine ?? createLlamaEngine({ threads: 1 });
  const scheduler = new Scheduler({ engine, maxLoaded: 3, numParallel: 2, maxQueue: 16, defaultKeepAliveMs: 300_000, ...o.scheduler });
  const app = createRuntimeServer({
    store,
    engine,
    scheduler,
    config: { host: "127.0.0.1:0", origins: o.origins ?? [] },
    homeDir: dir,
    threads: 1,
    version: "0.1.0",
    logger: o.logger,
    createRoot: o.createRoot,
    templateLimits: o.templateLimits,
    metrics: o.metrics,
    serveMetrics: o.serveMetrics,
  });
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  return {
    base,
    app,
    store,
    dir,
    gguf,
    scheduler,
    hold: async (model) => {
      const d = await new ModelResolver(store).describe(model);
      const run = resolveRunOptions(d.params, {});
      return scheduler.acquire(modelRequest(d, model, run.load, { slots: scheduler.numParallel, threads: 1 }));
    },
    close: async () => {
      await app.close();
      await engine.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** POST JSON, parse the answer (NDJSON: a list of objects). */
export async function post(base: string, path: string, body: unknown, init: RequestInit = {}): Promise<{ status: number; json: any; lines: any[]; text: string; headers: Headers }> {
  const res = await fetch(base + path, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json" },
    ...init,
  });
  const text = await res.text();
  let json: unknown;
  let lines: unknown[] = [];
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    lines = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  }
  if (json !== undefined) lines = [json];
  return { status: res.status, json, lines, text, headers: res.headers };
}
