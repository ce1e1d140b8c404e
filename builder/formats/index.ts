/**
 * Model image formats: which one a manifest is in (`media`), an Ollama image written as ModelPack or
 * Docker Model Runner (`export`), and ModelPack, Docker Model Runner and KitOps images read back into
 * Ollama images (`to-ollama`), which the registry client runs on pull through `pullConverter`.
 */
import type { Manifest } from "../../core/manifest.js";
import type { ProgressSink } from "../../core/progress.js";
import type { LocalStore } from "../../core/store.js";
import { FORMAT_NAMES, imageFormat } from "./media.js";
import { convertToOllama, planConversion } from "./to-ollama.js";

export { exportImage, serializeOciManifest, paramSize, type ExportResult } from "./export.js";
export { convertToOllama, planConversion, isSafePath, type ImageSource, type OllamaConfig } from "./to-ollama.js";
export { DockerModel, FORMAT_NAMES, imageFormat, KitOps, ModelPack, WRITE_FORMATS, type ImageFormat, type WriteFormat } from "./media.js";

/** The registry client's converter (registry/client/pull.ts `ForeignImageConverter`): ModelPack, Docker Model Runner and KitOps images become Ollama images. */
export const pullConverter = {
  plan(manifest: Manifest, name: string): { format: string; needed: Manifest["layers"] } | undefined {
    const f = imageFormat(manifest);
    if (f === "ollama" || f === "other") return undefined;
    const p = planConversion(manifest, name);
    return { format: FORMAT_NAMES[f], needed: p.needed };
  },
  async convert(store: LocalStore, manifest: Manifest, source: { digest: string; name: string }, opts: { signal?: AbortSignal; onProgress?: ProgressSink }): Promise<{ bytes: Buffer; summary: string[] }> {
    const r = await convertToOllama(store, manifest, source, opts);
    return { bytes: r.bytes, summary: r.summary };
  },
};
export { changeFormat, type FormatChange } from "./convert.js";
