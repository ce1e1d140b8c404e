/**
 * `mf build` and `/api/create`: a Modelfile (text or AST) and a build context become an image in the
 * local store. Planning checks everything first; then large files are imported in one read pass, small
 * layers written, the config and manifest written last. The same inputs give byte-identical manifests.
 */
import { readFile } from "node:fs/promises";
import { dirname, basename } from "node:path";
import { BuildError } from "../core/errors.js";
import { type Descriptor, type Manifest, ollamaManifest, serializeManifest } from "../core/manifest.js";
import type { LocalStore } from "../core/store.js";
import type { ModelRef } from "../core/reference.js";
import { type ProgressSink, noProgress } from "../core/progress.js";
import type { Diagnostic, ModelfileAst } from "../grammar/modelfile/ast.js";
import { decodeModelfile, formatDiagnostic, parseModelfile } from "../grammar/modelfile/index.js";
import { type PlanContext, type PlannedLayer, planBuild } from "./plan.js";
import type { ResolveContext } from "./resolve.js";

export interface BuildOptions {
  store: LocalStore;
  /** the names to tag the image with */
  tags: ModelRef[];
  resolve: ResolveContext;
  resolveBase?: PlanContext["resolveBase"];
  /** hard-link model files instead of copying them */
  link?: boolean;
  onProgress?: ProgressSink;
  /** warnings (legacy parameters and the like) */
  onWarning?: (message: string) => void;
  signal?: AbortSignal;
}

export interface BuildResult {
  /** manifest digest */
  digest: string;
  manifest: Manifest;
  bytes: Buffer;
  refs: ModelRef[];
}

/** The source a diagnostic points into, for compiler-style messages. */
export interface SourceText {
  file: string;
  text: string;
}

/** Thrown with every diagnostic of a failed build; `message` is the first one in compiler form. */
export class ModelfileBuildError extends BuildError {
  constructor(readonly diagnostics: Diagnostic[], readonly source: SourceText | undefined) {
    const errors = diagnostics.filter((d) => d.severity === "error");
    const first = errors[0]!;
    const where = source ? `${basename(source.file)}:${first.line}:${first.column}: ` : "";
    super("MODELFILE_INVALID", `${where}${first.message}${first.hint ? ` (${first.hint})` : ""}`, { detail: { diagnostics: errors } });
  }

  /** All errors, formatted like a compiler's (line, source line, caret, hint). */
  render(): string {
    const errs = this.diagnostics.filter((d) => d.severity === "error");
    if (!this.source) return errs.map((d) => `${d.line}:${d.column}: error: ${d.message}`).join("\n");
    return errs.map((d) => formatDiagnostic(d, this.source!.text, basename(this.source!.file))).join("\n");
  }
}

/** Reads, decodes and parses a Modelfile, then builds it. Relative paths resolve against its directory. */
export async function buildFromModelfile(path: string, opts: Omit<BuildOptions, "resolve"> & { contextDir: string; homeDir: string }): Promise<BuildResult> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new BuildError("FILE_NOT_FOUND", `cannot read Modelfile ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const text = decodeModelfile(bytes);
  const { ast, diagnostics } = parseModelfile(text);
  const source = { file: path, text };
  if (diagnostics.some((d) => d.severity === "error")) throw new ModelfileBuildError(diagnostics, source);
  for (const w of diagnostics) opts.onWarning?.(formatDiagnostic(w, text, basename(path)));
  return buildImage(ast, {
    ...opts,
    resolve: { baseDir: dirname(path), contextDir: opts.contextDir, homeDir: opts.homeDir },
  }, source);
}

export async function buildImage(ast: ModelfileAst, opts: BuildOptions, source?: SourceText): Promise<BuildResult> {
  const progress = opts.onProgress ?? noProgress;
  const { plan, diagnostics } = await planBuild(ast, { store: opts.store, resolve: opts.resolve, resolveBase: opts.resolveBase, signal: opts.signal });
  if (!plan) throw new ModelfileBuildError(diagnostics, source);
  for (const w of plan.warnings) opts.onWarning?.(source ? formatDiagnostic(w, source.text, basename(source.file)) : w.message);

  const created: string[] = [];
  try {
    const layers: Descriptor[] = [];
    for (const l of plan.layers) layers.push(await writeLayer(l, opts, progress, created));
    const configBytes = Buffer.from(JSON.stringify(plan.config));
    const cfg = await opts.store.writeBlob(configBytes);
    if (cfg.created) created.push(cfg.digest);
    const manifest = ollamaManifest(cfg, layers);
    const bytes = serializeManifest(manifest);
    progress({ status: "writing manifest" });
    const refs: ModelRef[] = [];
    let digest = "";
    for (const tag of opts.tags) {
      const w = await opts.store.writeManifest(tag, bytes);
      refs.push(w.ref);
      digest = w.digest;
    }
    progress({ status: "success" });
    return { digest, manifest, bytes, refs };
  } catch (e) {
    await rollback(opts.store, created);
    throw e;
  }
}

async function writeLayer(l: PlannedLayer, opts: BuildOptions, progress: ProgressSink, created: string[]): Promise<Descriptor> {
  const src = l.source;
  if (src.kind === "existing") {
    progress({ status: `using existing layer ${src.descriptor.digest}` });
    const d: Descriptor = { mediaType: l.mediaType, digest: src.descriptor.digest, size: src.descriptor.size };
    if (src.descriptor.from) d.from = src.descriptor.from;
    return d;
  }
  if (src.kind === "bytes") {
    const w = await opts.store.writeBlob(src.data);
    if (w.created) created.push(w.digest);
    progress({ status: `${w.created ? "creating new" : "using existing"} layer ${w.digest}` });
    return { mediaType: l.mediaType, digest: w.digest, size: w.size };
  }
  progress({ status: "copying file", total: src.size, completed: 0 });
  const w = await opts.store.importFile(src.path, {
    link: opts.link,
    signal: opts.signal,
    onProgress: (completed, total) => progress({ status: "copying file", total, completed }),
  });
  if (w.created) created.push(w.digest);
  progress({ status: `${w.created ? "creating new" : "using existing"} layer ${w.digest}` });
  return { mediaType: l.mediaType, digest: w.digest, size: w.size };
}

/** Removes blobs this build created that no manifest references, so a failed build changes nothing. */
async function rollback(store: LocalStore, created: string[]): Promise<void> {
  if (!created.length) return;
  const referenced = await store.referencedBlobs().catch(() => new Set<string>());
  for (const d of created) if (!referenced.has(d)) await store.removeBlob(d).catch(() => {});
}

