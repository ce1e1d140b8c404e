/**
 * A model page's facts, from what is already in the registry: the Ollama config and small layers
 * (builder/describe, as `mf show` reads them) and the GGUF header at the start of the weights blob
 * (builder/gguf's bounded reader, over ranged reads of the storage, so S3 works as a filesystem does).
 */
import { MediaType } from "../../../core/mediatypes.js";
import type { Manifest } from "../../../core/manifest.js";
import { parseDigest } from "../../../core/digest.js";
import { describeImage, formatParameters, modelfileFor } from "../../../builder/describe.js";
import { readGgufHeader, type GgufInfo, type PositionedSource } from "../../../builder/gguf.js";
import type { RepoStore } from "../repo-store.js";
import type { ManifestView } from "./catalog.js";

/** A text layer longer than this is shown cut, with a note. */
const TEXT_CAP = 256 << 10;
/** How far into a weights blob the header may go before the page gives up on it. */
const HEADER_CAP = 64 << 20;
/** Ranged reads of a blob fetch at least this much at a time. */
const READ_AHEAD = 1 << 20;
const CACHE_ENTRIES = 128;

export interface ModelFacts {
  architecture: string;
  parameterCount: number | null;
  /** "8.0B", "137M" */
  parameterSize: string;
  quantization: string;
  contextLength: number | null;
  family: string;
  format: string;
  template?: string;
  system?: string;
  parameters: Record<string, unknown>;
  /** the parameters as `mf show --parameters` prints them */
  parametersText: string;
  licenses: string[];
  messages: { role: string; content: string }[];
  /** the Modelfile that rebuilds the image (as `mf show --modelfile` prints it, FROM the blobs by digest) */
  modelfile: string;
  /** why the GGUF header could not be read, if it could not */
  headerError?: string;
}

/** Ranged reads of one stored blob, with read-ahead, refusing to go past `HEADER_CAP`. */
class BlobSource implements PositionedSource {
  private window = Buffer.alloc(0);
  private windowStart = 0;

  constructor(private readonly store: RepoStore, private readonly digest: string, private readonly size: number) {}

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (position + length > HEADER_CAP) throw new Error(`the GGUF header runs past ${HEADER_CAP >> 20} MiB; not read`);
    const inWindow = position >= this.windowStart && position + length <= this.windowStart + this.window.length;
    if (!inWindow) {
      const end = Math.min(this.size, position + Math.max(length, READ_AHEAD)) - 1;
      if (end < position) return { bytesRead: 0 };
      const d = parseDigest(this.digest)!;
      const chunks: Buffer[] = [];
      for await (const c of await this.store.readBlob(d, { start: position, end })) chunks.push(c as Buffer);
      this.window = Buffer.concat(chunks);
      this.windowStart = position;
    }
    const from = position - this.windowStart;
    const n = Math.max(0, Math.min(length, this.window.length - from));
    this.window.copy(buffer, offset, from, from + n);
    return { bytesRead: n };
  }
}

export class ModelReader {
  private readonly cache = new Map<string, ModelFacts>();

  constructor(private readonly store: RepoStore) {}

  private async text(digest: string, size: number): Promise<string> {
    const d = parseDigest(digest);
    if (!d) return "";
    if (size === 0) return "";
    const chunks: Buffer[] = [];
    for await (const c of await this.store.readBlob(d, { start: 0, end: Math.min(size, TEXT_CAP) - 1 })) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    return size > TEXT_CAP ? `${text}\n… (${size - TEXT_CAP} more bytes not shown)` : text;
  }

  private async header(digest: string, size: number): Promise<GgufInfo> {
    return readGgufHeader(new BlobSource(this.store, digest, size), size, digest, undefined, { keepArraysUpTo: 0 });
  }

  /** The facts of an Ollama model image (`view.isModel`), `name` being what `mf pull` would name it. */
  async facts(view: ManifestView, name: string): Promise<ModelFacts> {
    const key = `${view.digest}\n${name}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const manifest = { schemaVersion: 2, mediaType: view.mediaType, config: view.config!, layers: view.layers } as Manifest;
    const d = await describeImage(manifest, { text: (digest, size) => this.text(digest, size), path: (digest) => digest });
    const weights = view.layers.find((l) => l.mediaType === MediaType.model);
    let info: GgufInfo | undefined;
    let headerError: string | undefined;
    if (weights) {
      try {
        info = await this.header(weights.digest, weights.size);
      } catch (e) {
        headerError = (e as Error).message.slice(0, 300);
      }
    }
    const architecture = info?.architecture || d.config?.model_family || "";
    const ctx = info?.metadata[`${architecture}.context_length`];
    const facts: ModelFacts = {
      architecture,
      parameterCount: info?.parameterCount ?? null,
      parameterSize: info?.modelType || d.details.parameter_size,
      quantization: info?.fileType || d.details.quantization_level,
      contextLength: typeof ctx === "number" ? ctx : typeof ctx === "bigint" ? Number(ctx) : null,
      family: d.details.family,
      format: d.details.format,
      ...(d.template !== undefined ? { template: d.template } : {}),
      ...(d.system !== undefined ? { system: d.system } : {}),
      parameters: d.params,
      parametersText: formatParameters(d.params),
      licenses: d.licenses,
      messages: d.messages,
      modelfile: modelfileFor(d, name),
      ...(headerError ? { headerError } : {}),
    };
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, facts);
    return facts;
  }
}
