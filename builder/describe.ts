/**
 * What `mf show` and `/api/show` report about an image: its layers read back as Modelfile parts, the
 * details of its config, the GGUF metadata of its weights, and the Modelfile that rebuilds it.
 */
import { MediaType } from "../core/mediatypes.js";
import type { Descriptor, Manifest, ModelConfig } from "../core/manifest.js";
import type { LocalStore, StoredModel } from "../core/store.js";
import { displayRef } from "../core/reference.js";
import type { Command, ModelfileAst, MessageRole } from "../grammar/modelfile/ast.js";
import { formatModelfile } from "../grammar/modelfile/index.js";
import { readGgufInfo } from "./gguf.js";
import { DockerModel } from "./formats/media.js";

export interface ModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

export interface ModelDescription {
  model: StoredModel;
  config: ModelConfig | undefined;
  template?: string;
  system?: string;
  params: Record<string, unknown>;
  messages: { role: string; content: string }[];
  licenses: string[];
  adapters: string[];
  projectors: string[];
  /** the speculative-decoding draft model (the image's draft layer), if any */
  draft?: { path: string; digest: string; size: number };
  /** a Jinja chat template layer (kept from a Docker Model Runner or ModelPack image): replaces the GGUF's own */
  chatTemplate?: { text: string; digest: string };
  /** path of the weights blob */
  modelPath?: string;
  details: ModelDetails;
}

/** How an image's blobs are read: their text (configs and the small layers), and a path naming each. */
export interface ImageReader {
  text(digest: string, size: number): Promise<string>;
  path(digest: string): string;
}

export async function describeModel(store: LocalStore, model: StoredModel): Promise<ModelDescription> {
  const parts = await describeImage(model.manifest, {
    text: async (digest) => (await store.readBlob(digest, 64 << 20)).toString("utf8"),
    path: (digest) => store.blobPath(digest),
  });
  return { model, ...parts };
}

/** What an image's config and layers say, read through `read` (the local store, or a registry's storage). */
export async function describeImage(manifest: Manifest, read: ImageReader): Promise<Omit<ModelDescription, "model">> {
  const text = (l: Descriptor) => read.text(l.digest, l.size);
  let config: ModelConfig | undefined;
  try {
    config = JSON.parse(await text(manifest.config)) as ModelConfig;
  } catch {
    config = undefined;
  }
  const d: Omit<ModelDescription, "model"> = {
    config,
    params: {},
    messages: [],
    licenses: [],
    adapters: [],
    projectors: [],
    details: {
      parent_model: "",
      format: config?.model_format ?? "gguf",
      family: config?.model_family ?? "",
      families: config?.model_families?.length ? config.model_families : null,
      parameter_size: config?.model_type ?? "",
      quantization_level: config?.file_type ?? "",
    },
  };
  for (const l of manifest.layers) {
    switch (l.mediaType) {
      case MediaType.model:
        d.modelPath = read.path(l.digest);
        if (l.from) d.details.parent_model = l.from;
        break;
      case MediaType.adapter:
        d.adapters.push(read.path(l.digest));
        break;
      case MediaType.projector:
        d.projectors.push(read.path(l.digest));
        break;
      case MediaType.draft:
        // Ollama runs the first draft layer (server/images.go, GetModel's DraftPath)
        d.draft ??= { path: read.path(l.digest), digest: l.digest, size: l.size };
        break;
      case MediaType.template:
      case MediaType.prompt:
        d.template = await text(l);
        break;
      case MediaType.system:
        d.system = await text(l);
        break;
      case MediaType.params:
        d.params = JSON.parse(await text(l)) as Record<string, unknown>;
        break;
      case MediaType.messages:
        d.messages = JSON.parse(await text(l)) as { role: string; content: string }[];
        break;
      case MediaType.license:
        d.licenses.push(await text(l));
        break;
      case DockerModel.chatTemplate:
        d.chatTemplate ??= { text: await text(l), digest: l.digest };
        break;
    }
  }
  return d;
}

/** Parameter value as Modelfile text. */
function paramText(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** The parameters as `show --parameters` prints them (`name value`, one stop per line). */
export function formatParameters(params: Record<string, unknown>): string {
  const lines: string[] = [];
  for (const k of Object.keys(params).sort()) {
    const v = params[k];
    for (const x of Array.isArray(v) ? v : [v]) {
      const s = paramText(x);
      lines.push(`${k.padEnd(30)} ${typeof x === "string" ? JSON.stringify(s) : s}`);
    }
  }
  return lines.join("\n");
}

/** The Modelfile that rebuilds this image (FROM the weights blob's path, as Ollama prints it). */
export function modelfileOf(d: ModelDescription): string {
  return modelfileFor(d, displayRef(d.model.ref));
}

/** modelfileOf for an image known by `name` (a registry's `host/repository:tag`). */
export function modelfileFor(d: Omit<ModelDescription, "model">, name: string): string {
  const cmds: Command[] = [];
  if (d.modelPath) cmds.push({ kind: "from", value: d.modelPath });
  for (const p of d.projectors) cmds.push({ kind: "from", value: p });
  if (d.draft) cmds.push({ kind: "draft", value: d.draft.path });
  for (const a of d.adapters) cmds.push({ kind: "adapter", value: a });
  if (d.template !== undefined) cmds.push({ kind: "template", value: d.template });
  if (d.system !== undefined) cmds.push({ kind: "system", value: d.system });
  for (const k of Object.keys(d.params).sort()) {
    const v = d.params[k];
    for (const x of Array.isArray(v) ? v : [v]) cmds.push({ kind: "parameter", name: k, value: paramText(x) });
  }
  for (const l of d.licenses) cmds.push({ kind: "license", value: l });
  for (const m of d.messages) cmds.push({ kind: "message", role: m.role as MessageRole, content: m.content });
  if (d.config?.requires) cmds.push({ kind: "requires", value: d.config.requires });
  const ast: ModelfileAst = { commands: cmds };
  return `# Modelfile generated by "mf show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${name}\n\n${formatModelfile(ast)}`;
}

/** The draft model of an image, as `/api/show`'s `draft` and `mf show` print it. */
export interface DraftDetails {
  digest: string;
  size: number;
  format: string;
  family: string;
  parameter_size: string;
  quantization_level: string;
}

/** What the image's draft layer holds (its config entry and GGUF header), or undefined without one. */
export async function draftDetails(d: ModelDescription): Promise<DraftDetails | undefined> {
  if (!d.draft) return undefined;
  const info = await readGgufInfo(d.draft.path).catch(() => undefined);
  return {
    digest: d.draft.digest,
    size: d.draft.size,
    format: d.config?.draft?.model_format ?? "gguf",
    family: d.config?.draft?.architecture ?? info?.architecture ?? "",
    parameter_size: info?.modelType ?? "",
    quantization_level: info?.fileType ?? "",
  };
}

/** GGUF metadata of the weights, as `/api/show`'s `model_info` (large arrays left out). */
export async function modelInfo(d: ModelDescription): Promise<Record<string, unknown>> {
  if (!d.modelPath) return {};
  const info = await readGgufInfo(d.modelPath);
  const out: Record<string, unknown> = { "general.parameter_count": info.parameterCount };
  for (const [k, v] of Object.entries(info.metadata)) {
    // long arrays (the vocabulary) come back from the reader as summaries; Ollama shows them as null
    if ((Array.isArray(v) && v.length > 64) || (v !== null && typeof v === "object" && !Array.isArray(v))) out[k] = null;
    else out[k] = typeof v === "bigint" ? Number(v) : v;
  }
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}
