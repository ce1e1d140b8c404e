/**
 * `mf convert` and `mf build --format`: a stored image written again in another format. Ollama → ModelPack
 * or Docker Model Runner exports; any other image → Ollama converts; between two foreign formats the
 * image goes through Ollama's (blobs are shared, only configs and manifests are new).
 */
import type { Manifest } from "../../core/manifest.js";
import { digestOf } from "../../core/digest.js";
import type { ProgressSink } from "../../core/progress.js";
import type { LocalStore, StoredModel } from "../../core/store.js";
import { displayRef } from "../../core/reference.js";
import { exportImage } from "./export.js";
import { FORMAT_NAMES, imageFormat, type WriteFormat } from "./media.js";
import { convertToOllama } from "./to-ollama.js";

export interface FormatChange {
  /** the manifest to store */
  bytes: Buffer;
  manifest: Manifest;
  digest: string;
  /** the format the image was in */
  from: string;
  /** what happened, one line each */
  notes: string[];
}

export async function changeFormat(store: LocalStore, model: StoredModel, format: WriteFormat, opts: { signal?: AbortSignal; onProgress?: ProgressSink } = {}): Promise<FormatChange> {
  const name = displayRef(model.ref);
  const from = imageFormat(model.manifest);
  const notes: string[] = [];
  if (from === format) {
    notes.push(`${name} is already a ${FORMAT_NAMES[format]} image`);
    return { bytes: model.bytes, manifest: model.manifest, digest: model.digest, from: FORMAT_NAMES[from], notes };
  }
  let manifest = model.manifest;
  let bytes = model.bytes;
  if (from !== "ollama") {
    const r = await convertToOllama(store, model.manifest, { digest: model.digest, name }, opts);
    notes.push(`read the ${FORMAT_NAMES[from]} image:`, ...r.summary.map((s) => `  ${s}`));
    manifest = r.manifest;
    bytes = r.bytes;
  }
  if (format !== "ollama") {
    const e = await exportImage(store, manifest, format, name);
    if (e.dropped.length) notes.push(`left out (no place for them in a ${FORMAT_NAMES[format]} image): ${e.dropped.join(", ")}`);
    manifest = e.manifest;
    bytes = e.bytes;
  }
  return { bytes, manifest, digest: digestOf(bytes), from: FORMAT_NAMES[from], notes };
}
