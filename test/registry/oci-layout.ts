/** Writes an OCI image layout (what skopeo reads with `oci:DIR:TAG`) holding one model-like image. */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";

export interface LayoutImage {
  manifestDigest: string;
  layerDigest: string;
  layerSize: number;
}

/** A layout with an OCI manifest, a small config and one random layer of `layerSize` bytes (non-tar media type). */
export async function writeOciLayout(dir: string, tag: string, layerSize: number): Promise<LayoutImage> {
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = async (bytes: Buffer) => {
    const hex = createHash("sha256").update(bytes).digest("hex");
    await writeFile(join(blobs, hex), bytes);
    return `sha256:${hex}`;
  };
  // The layer is written in 4 MiB pieces so memory stays small whatever its size.
  const hash = createHash("sha256");
  const tmp = join(blobs, "layer.tmp");
  async function* pieces() {
    for (let left = layerSize; left > 0; left -= 4 << 20) {
      const b = randomBytes(Math.min(left, 4 << 20));
      hash.update(b);
      yield b;
    }
  }
  await pipeline(pieces, createWriteStream(tmp));
  const layerHex = hash.digest("hex");
  await rename(tmp, join(blobs, layerHex));
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const configDigest = await put(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{ mediaType: "application/vnd.ollama.image.model", digest: `sha256:${layerHex}`, size: layerSize }],
  }));
  const manifestDigest = await put(manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: "application/vnd.oci.image.manifest.v1+json", digest: manifestDigest, size: manifest.length,
      annotations: { "org.opencontainers.image.ref.name": tag },
    }],
  }));
  return { manifestDigest, layerDigest: `sha256:${layerHex}`, layerSize };
}
