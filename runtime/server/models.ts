/**
 * From a request's model name to what the handlers need: the stored model, its description (template,
 * system, parameters, messages, weights path; cached by manifest digest), and the scheduler request that
 * loads it with given options.
 */
import { RuntimeError } from "../../core/errors.js";
import { tryParseRef, displayRef } from "../../core/reference.js";
import type { LocalStore, StoredModel } from "../../core/store.js";
import { type ModelDescription, describeModel } from "../../builder/describe.js";
import { FORMAT_NAMES, imageFormat } from "../../builder/formats/media.js";
import { type ChatMessage, type ImagePrompt, prepareTemplate } from "../prompt/index.js";
import type { LoadOptions } from "../options.js";
import type { ModelRequest } from "../scheduler.js";
import { inferThinkTags } from "../thinking.js";
import type { OnDemand } from "./on-demand.js";

export function notFound(name: string): RuntimeError {
  return new RuntimeError("MODEL_NOT_FOUND", `model "${name}" not found, try pulling it first`);
}

export type Capability = "completion" | "tools" | "insert" | "thinking" | "embedding";

/** Architectures that only embed (as Ollama marks them): no completion, the embedding capability. */
const EMBEDDING_FAMILIES = new Set(["bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "gte", "xlm-roberta", "modern-bert", "neo-bert"]);

/**
 * What a template can do (`/api/show`'s `capabilities`): tools when it mentions `.Tools`, insert when
 * `.Suffix`, thinking when it prints `.Thinking` between two tags (runtime/thinking.ts); an embedding-only
 * architecture has `embedding` alone.
 */
export function capabilities(template: string | undefined, family?: string): Capability[] {
  if (family && EMBEDDING_FAMILIES.has(family.toLowerCase())) return ["embedding"];
  const caps: Capability[] = ["completion"];
  if (!template) return caps;
  try {
    const t = prepareTemplate(template).template;
    if (t.mentions("tools")) caps.push("tools");
    if (t.mentions("suffix")) caps.push("insert");
    if (inferThinkTags(template)) caps.push("thinking");
  } catch {
    // a template that does not parse has no extra capabilities
  }
  return caps;
}

/** Ollama's 400 for a request needing what the (effective) template cannot do: `"name" does not support tools`. */
export function requireCapability(name: string, template: string | undefined, cap: Capability): void {
  if (!capabilities(template).includes(cap)) throw new RuntimeError("BAD_REQUEST", `"${name}" does not support ${cap}`);
}

export class ModelResolver {
  private readonly cache = new Map<string, ModelDescription>();

  /** `onDemand`: asked to pull a model the store lacks (`mf serve --registry`); absent, such a name is a 404. */
  constructor(
    private readonly store: LocalStore,
    private readonly onDemand?: OnDemand,
  ) {}

  async find(name: string): Promise<StoredModel> {
    if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
    const ref = tryParseRef(name);
    if (!ref) throw notFound(name);
    let m = await this.store.findModel(ref);
    if (!m && this.onDemand && (await this.onDemand.ensure(ref, name))) m = await this.store.findModel(ref);
    if (!m) throw notFound(name);
    return m;
  }

  async describe(name: string): Promise<ModelDescription> {
    const m = await this.find(name);
    const hit = this.cache.get(m.digest);
    if (hit) return { ...hit, model: m };
    const d = await describeModel(this.store, m);
    this.cache.set(m.digest, d);
    if (this.cache.size > 64) this.cache.delete(this.cache.keys().next().value!);
    return d;
  }
}

/** The image's prompt parts, for runtime/prompt. */
export function imagePrompt(d: ModelDescription, fallbackTemplate?: string): ImagePrompt {
  const tpl = d.model.manifest.layers.find((l) => l.mediaType.endsWith(".template") || l.mediaType.endsWith(".prompt"));
  return {
    template: d.template ?? fallbackTemplate,
    templateDigest: d.template !== undefined ? tpl?.digest : undefined,
    system: d.system,
    messages: d.messages as ChatMessage[],
  };
}

export function shortName(d: ModelDescription): string {
  return displayRef(d.model.ref);
}

/** What the scheduler needs to load this model with these options. */
export function modelRequest(
  d: ModelDescription,
  name: string,
  load: LoadOptions,
  o: { slots: number; keepAliveMs?: number; signal?: AbortSignal; threads?: number },
): ModelRequest {
  if (!d.modelPath) {
    // a ModelPack or Docker Model Runner image in the store (mf build --format, mf convert) is not read here
    const f = imageFormat(d.model.manifest);
    if (f !== "ollama" && f !== "other") {
      throw new RuntimeError("BAD_REQUEST", `model "${name}" is a ${FORMAT_NAMES[f]} image; mf serve runs Ollama images: run \`mf convert ${name} --format ollama\` (or pull it, which converts)`);
    }
    throw new RuntimeError("BAD_REQUEST", `model "${name}" has no weights to run`);
  }
  // the image's DRAFT runs unless draft_num_predict is 0; the same weights with or without it are two runners
  const draft = d.draft && load.draftNumPredict > 0 ? { modelPath: d.draft.path, maxTokens: load.draftNumPredict } : undefined;
  return {
    // a kept Jinja chat template is part of what is loaded: the same weights with another one are another runner
    key: [d.modelPath, ...d.adapters, ...(draft ? [`draft ${draft.modelPath}`] : []), ...(d.chatTemplate ? [`jinja ${d.chatTemplate.digest}`] : [])].join("\n"),
    load: {
      modelPath: d.modelPath,
      adapters: d.adapters,
      contextSize: load.numCtx,
      slots: o.slots,
      batchSize: load.numBatch,
      threads: load.numThread ?? o.threads,
      ...(draft ? { draft } : {}),
      ...(d.chatTemplate ? { chatTemplate: d.chatTemplate.text } : {}),
    },
    info: { name: displayRef(d.model.ref), digest: d.model.digest, details: d.details, ...(draft ? { draft: { digest: d.draft!.digest } } : {}) },
    keepAliveMs: o.keepAliveMs,
    signal: o.signal,
  };
}
