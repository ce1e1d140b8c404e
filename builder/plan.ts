/**
 * Planning a build: everything that can fail on user input is checked here, before a byte is written,
 * so a bad Modelfile, a missing file or a file that is not GGUF leaves the store unchanged.
 *
 * DRAFT (a speculative-decoding draft model) is stored as Ollama stores it. What Ollama does, and where:
 * - parser/parser.go (`CreateRequestWithProgress`): a DRAFT value is only ever a local path (absolute, `~`,
 *   or relative to the Modelfile's directory), never a model name: a path that does not exist is an error,
 *   where FROM would fall back to a model name. A DRAFT and a FROM that resolve to the same file (made
 *   absolute, symbolic links followed) are refused with "DRAFT must not reference the same local path as
 *   FROM: <path>", whichever of the two comes first.
 * - server/create.go: the draft's files become layers of media type `application/vnd.ollama.image.draft`
 *   (manifest.MediaTypeImageDraft), after the model's; only GGUF is accepted ("supplied file was not in GGUF
 *   format"), a LoRA adapter is refused ("… is a LoRA adapter"); the config gets
 *   `"draft": {"model_format": "gguf", "architecture": <the draft's general.architecture>}`
 *   (types/model/config.go: `Draft *Draft json:"draft,omitempty"`).
 * - server/model.go (`parseFromModel`): FROM a model name carries that model's draft layer over, and its
 *   config (with its `draft`).
 * mf's own rules on top: a server reads DRAFT files only inside its create root, as FROM and ADAPTER; a
 * `sha256:` blob is accepted (what /api/create's `draft_files` sends); the last DRAFT wins (every one is
 * checked), as for ADAPTER; and the draft's vocabulary must pass the checks node-llama-cpp makes before it
 * drafts (llama/addon/AddonContext.cpp, `EnsureDraftContextIsCompatibleForSpeculative`: same tokenizer type,
 * same BOS/EOS, sizes within 128 tokens), so that a mismatch is a build error, not a failed load later.
 */
import * as fs from "node:fs/promises";
import type { Command, Diagnostic, Loc, MessageCommand, ModelfileAst, ParameterCommand, TextCommand } from "../grammar/modelfile/ast.js";
import { typeParameters } from "../grammar/modelfile/params.js";
import { parseTemplate } from "../grammar/template/index.js";
import { MediaType } from "../core/mediatypes.js";
import type { Descriptor, DraftConfig, ModelConfig } from "../core/manifest.js";
import type { LocalStore, StoredModel } from "../core/store.js";
import { type ModelRef, displayRef } from "../core/reference.js";
import { MfError } from "../core/errors.js";
import { readGgufInfo, type GgufInfo } from "./gguf.js";
import { type ResolveContext, resolveSource } from "./resolve.js";

/** A layer to be: an existing blob (inherited), a file to import, or bytes to write. */
export type LayerSource =
  | { kind: "existing"; descriptor: Descriptor }
  | { kind: "file"; path: string; size: number }
  | { kind: "bytes"; data: Buffer };

export interface PlannedLayer {
  mediaType: string;
  source: LayerSource;
}

export interface BuildPlan {
  /** layers in manifest order */
  layers: PlannedLayer[];
  config: ModelConfig;
  warnings: Diagnostic[];
}

export interface PlanContext {
  store: LocalStore;
  resolve: ResolveContext;
  /** fetches a base model missing from the store into it (wired to the registry client by cli/ and runtime/) */
  resolveBase?: (ref: ModelRef, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

type CommandOf<K extends Command["kind"]> = K extends "parameter" ? ParameterCommand : K extends "message" ? MessageCommand : TextCommand;

class Collector {
  readonly diagnostics: Diagnostic[] = [];
  error(loc: Loc | undefined, length: number, message: string, hint?: string): void {
    this.diagnostics.push({ severity: "error", line: loc?.line ?? 1, column: loc?.column ?? 1, length: Math.max(1, length), message, ...(hint ? { hint } : {}) });
  }
  get failed(): boolean {
    return this.diagnostics.some((d) => d.severity === "error");
  }
}

/**
 * Why a FROM/ADAPTER file is not usable. A server does not quote a file it read itself (its magic bytes,
 * key or tensor names): only what the client sent, the value, is named.
 */
function ggufError(e: unknown, value: string, serverFile: boolean, ctx: PlanContext): string {
  if (serverFile && ctx.resolve.fileRoot !== undefined) return `"${value}" is not a valid GGUF file`;
  return (e as Error).message;
}

export async function planBuild(ast: ModelfileAst, ctx: PlanContext): Promise<{ plan?: BuildPlan; diagnostics: Diagnostic[] }> {
  const c = new Collector();
  const last = <K extends Command["kind"]>(kind: K) => [...ast.commands].reverse().find((x) => x.kind === kind) as CommandOf<K> | undefined;
  const all = <K extends Command["kind"]>(kind: K) => ast.commands.filter((x) => x.kind === kind) as CommandOf<K>[];

  // FROM: files and blobs give weights/projectors; a model name gives a base image (a later name wins).
  let base: StoredModel | undefined;
  let modelLayer: { source: LayerSource; info: GgufInfo } | undefined;
  let projector: { source: LayerSource } | undefined;
  /** the files FROM names (paths and blob paths): DRAFT may not name one of them */
  const fromFiles: string[] = [];
  const froms = all("from");
  if (froms.length === 0) c.error({ line: 1, column: 1 }, 1, "no FROM line", "a Modelfile needs FROM <model file or model name>");
  for (const f of froms) {
    const r = await resolveSource(f.value, ctx.resolve);
    const len = f.value.length;
    if (r.kind === "error") {
      c.error(f.valueLoc ?? f.loc, len, r.message, r.hint);
      continue;
    }
    if (r.kind === "model") {
      try {
        base = await loadBase(r.ref, ctx);
      } catch (e) {
        c.error(f.valueLoc ?? f.loc, len, (e as Error).message);
      }
      continue;
    }
    const path = r.kind === "file" ? r.path : await blobPathIfPresent(ctx.store, r.digest);
    if (!path) {
      c.error(f.valueLoc ?? f.loc, len, `blob ${r.kind === "blob" ? r.digest : ""} is not in the store`);
      continue;
    }
    fromFiles.push(path);
    let info: GgufInfo;
    try {
      info = await readGgufInfo(path, ctx.signal);
    } catch (e) {
      c.error(f.valueLoc ?? f.loc, len, ggufError(e, f.value, r.kind === "file", ctx));
      continue;
    }
    const source: LayerSource = r.kind === "file"
      ? { kind: "file", path, size: info.fileSize }
      : { kind: "existing", descriptor: { mediaType: MediaType.model, digest: r.digest, size: info.fileSize } };
    if (info.architecture === "clip") projector = { source };
    else modelLayer = { source, info };
  }

  // ADAPTER (last wins): a LoRA GGUF file or blob.
  let adapter: LayerSource | undefined;
  const a = last("adapter");
  if (a) {
    const r = await resolveSource(a.value, ctx.resolve);
    if (r.kind === "error") c.error(a.valueLoc ?? a.loc, a.value.length, r.message, r.hint);
    else if (r.kind === "model") c.error(a.valueLoc ?? a.loc, a.value.length, `no such adapter file "${a.value}"`, "ADAPTER takes a path to a LoRA GGUF file or a sha256: blob");
    else {
      const path = r.kind === "file" ? r.path : await blobPathIfPresent(ctx.store, r.digest);
      if (!path) c.error(a.valueLoc ?? a.loc, a.value.length, `blob ${a.value} is not in the store`);
      else {
        try {
          const info = await readGgufInfo(path, ctx.signal);
          adapter = r.kind === "file"
            ? { kind: "file", path, size: info.fileSize }
            : { kind: "existing", descriptor: { mediaType: MediaType.adapter, digest: r.digest, size: info.fileSize } };
        } catch (e) {
          c.error(a.valueLoc ?? a.loc, a.value.length, ggufError(e, a.value, r.kind === "file", ctx));
        }
      }
    }
  }

  // DRAFT (last wins, every one checked): a model GGUF file or blob, never FROM's own file (see the top).
  let draft: { source: LayerSource; info: GgufInfo } | undefined;
  const drafts = all("draft");
  for (const [i, dr] of drafts.entries()) {
    const at = dr.valueLoc ?? dr.loc;
    const len = dr.value.length;
    const r = await resolveSource(dr.value, ctx.resolve);
    if (r.kind === "error") {
      c.error(at, len, r.message, r.hint);
      continue;
    }
    if (r.kind === "model") {
      c.error(at, len, `no such draft file "${dr.value}"`, "DRAFT takes a path to a GGUF file (or a sha256: blob), not a model name");
      continue;
    }
    const path = r.kind === "file" ? r.path : await blobPathIfPresent(ctx.store, r.digest);
    if (!path) {
      c.error(at, len, `blob ${dr.value} is not in the store`);
      continue;
    }
    if (await sameFileAsAny(path, fromFiles)) {
      c.error(at, len, `DRAFT must not reference the same local path as FROM: ${dr.value}`, "DRAFT names a smaller model that drafts tokens for the one FROM names");
      continue;
    }
    if (i !== drafts.length - 1) continue;
    let info: GgufInfo;
    try {
      info = await readGgufInfo(path, ctx.signal);
    } catch (e) {
      c.error(at, len, ggufError(e, dr.value, r.kind === "file", ctx));
      continue;
    }
    const kind = info.metadata["general.type"] === "adapter" ? "a LoRA adapter" : info.architecture === "clip" ? "a projector" : undefined;
    if (kind) {
      c.error(at, len, `"${dr.value}" is ${kind}, not a model`, "DRAFT takes a small model with the same vocabulary as FROM's");
      continue;
    }
    draft = {
      source: r.kind === "file" ? { kind: "file", path, size: info.fileSize } : { kind: "existing", descriptor: { mediaType: MediaType.draft, digest: r.digest, size: info.fileSize } },
      info,
    };
  }

  // TEMPLATE: validated with the template engine; errors point inside the Modelfile.
  const t = last("template");
  if (t) {
    try {
      parseTemplate(t.value);
    } catch (e) {
      const te = e as MfError & { line?: number; column?: number };
      const at = templateLoc(t.valueLoc ?? t.loc, t.value, te.line, te.column);
      c.error(at, 1, `invalid TEMPLATE: ${te.message}`);
    }
  }

  // PARAMETER: typed against the table; diagnostics carry positions.
  const typed = typeParameters(all("parameter"));
  c.diagnostics.push(...typed.diagnostics);

  if (!modelLayer && !base && !c.failed) c.error(froms[0]?.valueLoc ?? { line: 1, column: 1 }, 1, "FROM names no model weights");
  if (draft && !c.failed) {
    const target = modelLayer?.info ?? (base ? await baseWeightsInfo(ctx, base) : undefined);
    const why = target && vocabularyMismatch(target, draft.info);
    const d = last("draft")!;
    if (why) c.error(d.valueLoc ?? d.loc, d.value.length, `DRAFT cannot draft for this model: ${why}`, "a draft model must share the tokenizer of the model it drafts for");
  }
  if (c.failed) return { diagnostics: c.diagnostics };

  // Assemble: the base's layers (with `from`), replaced or extended by this Modelfile.
  const fromName = base ? `${base.ref.namespace}/${base.ref.model}` : undefined;
  const inherit = (kind: string): Descriptor[] =>
    base ? base.manifest.layers.filter((l) => l.mediaType === kind || (kind === MediaType.template && l.mediaType === MediaType.prompt)).map((l) => ({ ...l, from: l.from ?? fromName })) : [];
  const existing = (d: Descriptor): PlannedLayer => ({ mediaType: d.mediaType === MediaType.prompt ? MediaType.template : d.mediaType, source: { kind: "existing", descriptor: d } });
  const text = (mediaType: string, s: string): PlannedLayer => ({ mediaType, source: { kind: "bytes", data: Buffer.from(s, "utf8") } });

  const layers: PlannedLayer[] = [];
  if (modelLayer) layers.push({ mediaType: MediaType.model, source: modelLayer.source });
  else layers.push(...inherit(MediaType.model).map(existing));
  if (projector) layers.push({ mediaType: MediaType.projector, source: projector.source });
  else layers.push(...inherit(MediaType.projector).map(existing));
  if (adapter) layers.push({ mediaType: MediaType.adapter, source: adapter });
  else layers.push(...inherit(MediaType.adapter).map(existing));
  const inheritedDraft = draft ? [] : inherit(MediaType.draft);
  if (draft) layers.push({ mediaType: MediaType.draft, source: draft.source });
  else layers.push(...inheritedDraft.map(existing));

  if (t) layers.push(text(MediaType.template, t.value));
  else layers.push(...inherit(MediaType.template).map(existing));
  const s = last("system");
  if (s) layers.push(text(MediaType.system, s.value));
  else layers.push(...inherit(MediaType.system).map(existing));

  const baseParams = base ? await readJsonLayer<Record<string, unknown>>(ctx.store, base, MediaType.params) : undefined;
  const params = { ...(baseParams ?? {}), ...typed.params };
  if (Object.keys(params).length) layers.push(text(MediaType.params, sortedJson(params)));

  const msgs = all("message");
  if (msgs.length) layers.push(text(MediaType.messages, JSON.stringify(msgs.map((m) => ({ role: m.role, content: m.content })))));
  else layers.push(...inherit(MediaType.messages).map(existing));

  layers.push(...inherit(MediaType.license).map(existing));
  for (const l of all("license")) layers.push(text(MediaType.license, l.value));

  // The config: from the new weights, else the base's config.
  const req = last("requires")?.value;
  let config: ModelConfig;
  if (modelLayer) {
    const info = modelLayer.info;
    config = {
      model_format: "gguf",
      model_family: info.architecture,
      model_families: projector ? [info.architecture, "clip"] : [info.architecture],
      model_type: info.modelType,
      file_type: info.fileType,
      architecture: "amd64",
      os: "linux",
    };
  } else {
    config = (await readJsonBlob<ModelConfig>(ctx.store, base!.manifest.config.digest)) ?? defaultConfig();
  }
  if (req !== undefined) config = withRequires(config, req);
  // the config's `draft` describes the draft layer: a new one, or the base's (with the base's own words)
  let draftConfig: DraftConfig | undefined;
  if (draft) draftConfig = { model_format: "gguf", architecture: draft.info.architecture };
  else if (inheritedDraft.length) {
    const baseConfig = await readJsonBlob<ModelConfig>(ctx.store, base!.manifest.config.digest);
    draftConfig = baseConfig?.draft ?? { model_format: "gguf", architecture: (await readGgufInfo(ctx.store.blobPath(inheritedDraft[0]!.digest), ctx.signal).catch(() => undefined))?.architecture ?? "" };
  }
  config = withDraft(config, draftConfig);
  return { plan: { layers, config, warnings: c.diagnostics.filter((d) => d.severity === "warning") }, diagnostics: c.diagnostics };
}

async function loadBase(ref: ModelRef, ctx: PlanContext): Promise<StoredModel> {
  const found = await ctx.store.findModel(ref);
  if (found) return found;
  if (!ctx.resolveBase) throw new MfError("MODEL_NOT_FOUND", `model "${displayRef(ref)}" not found in the store`);
  await ctx.resolveBase(ref, ctx.signal);
  return ctx.store.readModel(ref);
}

async function blobPathIfPresent(store: LocalStore, digest: string): Promise<string | undefined> {
  return (await store.hasBlob(digest)) ? store.blobPath(digest) : undefined;
}

async function readJsonBlob<T>(store: LocalStore, digest: string): Promise<T | undefined> {
  try {
    return JSON.parse((await store.readBlob(digest)).toString("utf8")) as T;
  } catch {
    return undefined;
  }
}

async function readJsonLayer<T>(store: LocalStore, model: StoredModel, mediaType: string): Promise<T | undefined> {
  const l = model.manifest.layers.find((x) => x.mediaType === mediaType);
  return l ? readJsonBlob<T>(store, l.digest) : undefined;
}

/** JSON with object keys sorted at every level (the params layer is reproducible). */
export function sortedJson(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(norm);
    if (x && typeof x === "object") {
      return Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, norm((x as Record<string, unknown>)[k])]));
    }
    return x;
  };
  return JSON.stringify(norm(v));
}

function defaultConfig(): ModelConfig {
  return { model_format: "gguf", model_family: "", model_families: [], model_type: "", file_type: "", architecture: "amd64", os: "linux" };
}

/** The config with `draft` set (or removed), placed after `requires` and before architecture/os. */
function withDraft(c: ModelConfig, draft: DraftConfig | undefined): ModelConfig {
  const { architecture, os, draft: _d, ...rest } = c;
  return (draft ? { ...rest, draft, architecture, os } : { ...rest, architecture, os }) as ModelConfig;
}

/** True when `path` is one of `others` once made absolute with links followed (Ollama's sameLocalPath). */
async function sameFileAsAny(path: string, others: readonly string[]): Promise<boolean> {
  const canonical = (p: string) => fs.realpath(p).catch(() => p);
  const me = await canonical(path);
  for (const o of others) if ((await canonical(o)) === me) return true;
  return false;
}

/** The GGUF header of a base image's weights, when it has them. */
async function baseWeightsInfo(ctx: PlanContext, base: StoredModel): Promise<GgufInfo | undefined> {
  const l = base.manifest.layers.find((x) => x.mediaType === MediaType.model);
  return l ? readGgufInfo(ctx.store.blobPath(l.digest), ctx.signal).catch(() => undefined) : undefined;
}

/** Why `draft` cannot draft tokens for `target` (node-llama-cpp's checks on the header alone), or undefined. */
export function vocabularyMismatch(target: GgufInfo, draft: GgufInfo): string | undefined {
  const m = (i: GgufInfo, k: string) => i.metadata[`tokenizer.ggml.${k}`];
  const size = (i: GgufInfo): number | undefined => {
    const v = m(i, "tokens");
    return Array.isArray(v) ? v.length : v && typeof v === "object" && "length" in v ? v.length : undefined;
  };
  if (m(target, "model") !== m(draft, "model")) return `its tokenizer is ${JSON.stringify(m(draft, "model") ?? "none")}, the model's ${JSON.stringify(m(target, "model") ?? "none")}`;
  for (const k of ["bos_token_id", "eos_token_id"]) {
    if (m(target, k) !== m(draft, k)) return `its ${k} is ${String(m(draft, k) ?? "unset")}, the model's ${String(m(target, k) ?? "unset")}`;
  }
  const [a, b] = [size(target), size(draft)];
  if (a !== undefined && b !== undefined && Math.abs(a - b) > 128) return `its vocabulary has ${b} tokens, the model's ${a}`;
  return undefined;
}

/** Keeps Ollama's field order: `requires` sits before architecture/os. */
function withRequires(c: ModelConfig, requires: string): ModelConfig {
  const { architecture, os, requires: _r, ...rest } = c;
  return { ...rest, requires, architecture, os } as ModelConfig;
}

/** Maps a position inside a TEMPLATE value to the Modelfile (the value may start after `"""`). */
function templateLoc(valueLoc: Loc | undefined, _value: string, line?: number, column?: number): Loc {
  const start = valueLoc ?? { line: 1, column: 1 };
  if (!line || !column) return start;
  if (line === 1) return { line: start.line, column: start.column + column - 1 };
  return { line: start.line + line - 1, column };
}
