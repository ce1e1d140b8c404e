/**
 * An Ollama image written again as a CNCF ModelPack artifact or a Docker Model Runner image: the same
 * blobs (the GGUF, licences, a Jinja chat template kept from a conversion) under the other format's
 * media types, with a config of its own. The rules followed, with their sources: docs/spec/model-formats.md.
 * Ollama's TEMPLATE (a Go template), SYSTEM, PARAMETER and MESSAGE have no place in either format and are
 * left out (returned in `dropped`); adapters and draft models are refused.
 */
import { BuildError } from "../../core/errors.js";
import type { Descriptor, Manifest } from "../../core/manifest.js";
import { MediaType } from "../../core/mediatypes.js";
import type { LocalStore } from "../../core/store.js";
import { readGgufInfo } from "../gguf.js";
import { DockerModel, FORMAT_NAMES, imageFormat, ModelPack } from "./media.js";

export interface ExportResult {
  manifest: Manifest;
  /** the manifest as written (OCI image manifest JSON) */
  bytes: Buffer;
  /** the Ollama layer kinds with no place in the format, left out */
  dropped: string[];
}

interface OutLayer {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

const DROPPED: Record<string, string> = {
  [MediaType.template]: "TEMPLATE",
  [MediaType.prompt]: "TEMPLATE",
  [MediaType.system]: "SYSTEM",
  [MediaType.params]: "PARAMETER",
  [MediaType.messages]: "MESSAGE",
};

/**
 * Writes the config blob of `format` for the Ollama image `manifest` (its blobs in `store`) and returns the
 * manifest to store; `name` is the model's name for the config's descriptor.
 */
export async function exportImage(store: LocalStore, manifest: Manifest, format: "modelpack" | "docker-model", name: string): Promise<ExportResult> {
  const from = imageFormat(manifest);
  if (from !== "ollama") throw new BuildError("BAD_REQUEST", `${name} is a ${FORMAT_NAMES[from]} image, not an Ollama image`);
  const what = FORMAT_NAMES[format];
  const weights = manifest.layers.filter((l) => l.mediaType === MediaType.model);
  if (weights.length !== 1) throw new BuildError("BAD_REQUEST", `${name} has ${weights.length} weight layers; a ${what} image carries exactly one GGUF`);
  for (const l of manifest.layers) {
    if (l.mediaType === MediaType.adapter) throw new BuildError("BAD_REQUEST", `${name} has an ADAPTER (LoRA), which a ${what} image cannot carry: build the model without it`);
    if (l.mediaType === MediaType.draft) throw new BuildError("BAD_REQUEST", `${name} has a DRAFT model, which a ${what} image cannot carry: build the model without it`);
    if (l.mediaType === MediaType.projector && format === "modelpack") {
      throw new BuildError("BAD_REQUEST", `${name} has a projector (vision) layer; mf writes it only to a Docker Model Runner image (--format docker-model)`);
    }
  }
  const weight = weights[0]!;
  const info = await readGgufInfo(store.blobPath(weight.digest));
  const licenses = manifest.layers.filter((l) => l.mediaType === MediaType.license);
  const jinja = manifest.layers.find((l) => l.mediaType === DockerModel.chatTemplate);
  const projector = manifest.layers.find((l) => l.mediaType === MediaType.projector);
  const dropped = [...new Set(manifest.layers.map((l) => DROPPED[l.mediaType]).filter((x): x is string => !!x))];

  const layers: OutLayer[] = [];
  let config: unknown;
  if (format === "modelpack") {
    layers.push(pathLayer(ModelPack.weightRaw, weight, "model.gguf"));
    if (jinja) layers.push(pathLayer(ModelPack.weightConfigRaw, jinja, "chat_template.jinja"));
    licenses.forEach((l, i) => layers.push(pathLayer(ModelPack.docRaw, l, i === 0 ? "LICENSE" : `LICENSE.${i + 1}`)));
    const cfg: Record<string, unknown> = { format: "gguf", paramSize: paramSize(info.parameterCount) };
    if (info.fileType) cfg.quantization = info.fileType;
    const precision = PRECISION[info.fileType];
    if (precision) cfg.precision = precision;
    cfg.capabilities = { inputTypes: projector ? ["text", "image"] : ["text"], outputTypes: ["text"] };
    const descriptor: Record<string, unknown> = { name };
    if (info.architecture) descriptor.family = info.architecture;
    config = { descriptor, config: cfg, modelfs: { type: "layers", diffIds: layers.map((l) => l.digest) } };
  } else {
    layers.push(plain(DockerModel.gguf, weight));
    for (const l of licenses) layers.push(plain(DockerModel.license, l));
    if (projector) layers.push(plain(DockerModel.mmproj, projector));
    if (jinja) layers.push(plain(DockerModel.chatTemplate, jinja));
    const cfg: Record<string, unknown> = { format: "gguf" };
    if (info.fileType) cfg.quantization = info.fileType;
    cfg.parameters = info.modelType;
    if (info.architecture) cfg.architecture = info.architecture;
    cfg.size = humanBytes(layers.reduce((a, l) => a + l.size, 0));
    config = { config: cfg, descriptor: {}, rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) } };
  }
  const configBytes = Buffer.from(JSON.stringify(config));
  const cfg = await store.writeBlob(configBytes);
  const out: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    ...(format === "modelpack" ? { artifactType: ModelPack.artifactType } : {}),
    config: { mediaType: format === "modelpack" ? ModelPack.config : DockerModel.config, digest: cfg.digest, size: cfg.size },
    layers,
  };
  return { manifest: out, bytes: serializeOciManifest(out), dropped };
}

function pathLayer(mediaType: string, d: Descriptor, path: string): OutLayer {
  return { mediaType, digest: d.digest, size: d.size, annotations: { [ModelPack.filepath]: path } };
}

function plain(mediaType: string, d: Descriptor): OutLayer {
  return { mediaType, digest: d.digest, size: d.size };
}

/** An OCI image manifest as JSON in the image-spec's member order, annotations kept. */
export function serializeOciManifest(m: Manifest): Buffer {
  const desc = (d: Descriptor) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.annotations ? { annotations: d.annotations } : {}) });
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: m.mediaType,
    ...(m.artifactType ? { artifactType: m.artifactType } : {}),
    config: desc(m.config),
    layers: m.layers.map(desc),
    ...(m.annotations ? { annotations: m.annotations } : {}),
  }));
}

/** ModelPack's `paramSize`: `<count><scale-prefix>`, at most one decimal (docs/config.md), e.g. `8b`, `6.7b`, `135m`. */
export function paramSize(count: number): string {
  const scales: [number, string][] = [[1e15, "q"], [1e12, "t"], [1e9, "b"], [1e6, "m"], [1e3, "k"]];
  const [scale, prefix] = scales.find(([s]) => count >= s) ?? [1e3, "k"];
  const v = count / scale;
  const s = v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
  return `${s}${prefix}`;
}

/** GGUF file types whose weights are all of one float precision. */
const PRECISION: Record<string, string> = { F32: "fp32", F16: "fp16", BF16: "bf16" };

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2)} ${units[i]}`;
}
