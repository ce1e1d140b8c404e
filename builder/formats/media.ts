/**
 * The media types of the model image formats mf writes and reads besides Ollama's, and which format a
 * manifest is in. The facts and their sources: docs/spec/model-formats.md.
 */
import type { Manifest } from "../../core/manifest.js";
import { MediaType } from "../../core/mediatypes.js";

/** CNCF ModelPack (modelpack/model-spec `docs/spec.md`, `docs/config.md`, `docs/annotations.md`). */
export const ModelPack = {
  artifactType: "application/vnd.cncf.model.manifest.v1+json",
  config: "application/vnd.cncf.model.config.v1+json",
  /** an unarchived, uncompressed weights file */
  weightRaw: "application/vnd.cncf.model.weight.v1.raw",
  /** a file the weights need (tokenizer, chat template, …), unarchived */
  weightConfigRaw: "application/vnd.cncf.model.weight.config.v1.raw",
  /** documentation (README, LICENSE), unarchived */
  docRaw: "application/vnd.cncf.model.doc.v1.raw",
  /** the layer's file path, on every layer mf writes */
  filepath: "org.cncf.model.filepath",
} as const;

/** The names an earlier draft of the ModelPack spec used (`vnd.cnai`); readers still meet them. */
const CNAI = { artifactType: "application/vnd.cnai.model.manifest.v1+json", config: "application/vnd.cnai.model.config.v1+json", filepath: "org.cnai.model.filepath" } as const;

/** Docker Model Runner (docker/model-runner `pkg/distribution/types/config.go`). */
export const DockerModel = {
  /** the GGUF config ("legacy flat file structure") */
  config: "application/vnd.docker.ai.model.config.v0.1+json",
  /** one file per layer, each annotated with its path */
  configV02: "application/vnd.docker.ai.model.config.v0.2+json",
  gguf: "application/vnd.docker.ai.gguf.v3",
  license: "application/vnd.docker.ai.license",
  mmproj: "application/vnd.docker.ai.mmproj",
  chatTemplate: "application/vnd.docker.ai.chat.template.jinja",
} as const;

/** KitOps ModelKit (kitops-ml/kitops `pkg/lib/constants/mediatype/`). */
export const KitOps = {
  artifactType: "application/vnd.kitops.modelkit.manifest.v1+json",
  config: "application/vnd.kitops.modelkit.config.v1+json",
} as const;

/** The formats mf writes (`--format`). */
export const WRITE_FORMATS = ["ollama", "modelpack", "docker-model"] as const;
export type WriteFormat = (typeof WRITE_FORMATS)[number];
export type ImageFormat = WriteFormat | "kitops" | "other";

export const FORMAT_NAMES: Record<ImageFormat, string> = {
  ollama: "Ollama",
  modelpack: "CNCF ModelPack",
  "docker-model": "Docker Model Runner",
  kitops: "KitOps ModelKit",
  other: "non-model OCI",
};

/** Which format a manifest is in, from its artifactType and config media type. */
export function imageFormat(m: Pick<Manifest, "artifactType" | "config" | "layers">): ImageFormat {
  const cfg = m.config.mediaType;
  if (m.artifactType === ModelPack.artifactType || m.artifactType === CNAI.artifactType || cfg === ModelPack.config || cfg === CNAI.config) return "modelpack";
  if (cfg === DockerModel.config || cfg === DockerModel.configV02) return "docker-model";
  if (m.artifactType === KitOps.artifactType || cfg === KitOps.config) return "kitops";
  if (m.layers.some((l) => l.mediaType.startsWith("application/vnd.ollama.image."))) return "ollama";
  if (cfg === MediaType.dockerConfig && m.layers.length === 0) return "ollama";
  return "other";
}

/** A layer's file path annotation (ModelPack's, or the old `cnai` spelling, or the OCI title). */
export function layerPath(annotations: Record<string, string> | undefined): string | undefined {
  return annotations?.[ModelPack.filepath] ?? annotations?.[CNAI.filepath] ?? annotations?.["org.opencontainers.image.title"];
}

/** A ModelPack or KitOps layer type read as its parts: kind (weight, weight.config, doc, model, docs, …) and packing. */
export function parseLayerType(mediaType: string): { family: "modelpack" | "kitops"; kind: string; packing: "raw" | "tar" | "tar+gzip" | "tar+zstd" | "gguf" | "other" } | undefined {
  let m = /^application\/vnd\.(?:cncf|cnai)\.model\.([a-z.]+?)\.v1(?:\.(raw|tar|tar\+gzip|tar\+zstd|gguf|[a-z]+))?$/.exec(mediaType);
  if (m) return { family: "modelpack", kind: m[1]!, packing: packing(m[2] ?? "raw") };
  m = /^application\/vnd\.kitops\.modelkit\.([a-z]+)\.v1\.(tar(?:\+gzip|\+zstd)?|raw)$/.exec(mediaType);
  if (m) return { family: "kitops", kind: m[1]!, packing: packing(m[2]!) };
  return undefined;
}

function packing(s: string): "raw" | "tar" | "tar+gzip" | "tar+zstd" | "gguf" | "other" {
  return s === "raw" || s === "tar" || s === "tar+gzip" || s === "tar+zstd" || s === "gguf" ? s : "other";
}

/** `model-00001-of-00004.gguf`: one shard of a split GGUF (llama.cpp's gguf-split naming). */
export const SHARD_NAME = /-\d{5}-of-\d{5}\.gguf$/i;
