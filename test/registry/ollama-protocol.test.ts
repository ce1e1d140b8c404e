/**
 * Stock Ollama's registry protocol (compat.md §4), done exactly as Ollama does it, since no Ollama binary
 * can run here: push with `Content-Range: a-b` PATCHes following each Location, a mount for a layer with
 * `from`, a docker v2 manifest of `application/vnd.ollama.image.*` layers; pull via HEAD, a GET that
 * must answer 307 with an absolute Location, then 16 parallel Range GETs on it without Authorization.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { AuthError } from "../../core/errors.js";
import type { AuthHook } from "../../registry/server/auth.js";
import { sha256 } from "./oci-client.js";
import { ollamaPullBlob } from "./ollama-client.js";
import { startInProcess, type InProcessRegistry } from "./peers.js";

const TOKEN = "Bearer test-token";
const auth: AuthHook = {
  authorize(request) {
    if (request.headers.authorization !== TOKEN) throw new AuthError("UNAUTHORIZED", "authentication required");
  },
  challenge: (_request, access) => `Bearer realm="http://127.0.0.1/token",service="mf",scope="repository:${access.repository}:pull"`,
};

let s: InProcessRegistry;
before(async () => {
  s = await startInProcess({ auth });
});
after(async () => s.close());

const CHUNK = 1024 * 1024;

/** Ollama's chunked push of one blob. */
async function ollamaPushBlob(repo: string, data: Buffer, from?: string): Promise<void> {
  const digest = sha256(data);
  const headers = { authorization: TOKEN };
  const head = await fetch(`${s.base}/v2/${repo}/blobs/${digest}`, { method: "HEAD", headers });
  if (head.status === 200) return;
  assert.equal(head.status, 404);
  const q = from ? `?mount=${digest}&from=${from}` : "";
  const start = await fetch(`${s.base}/v2/${repo}/blobs/uploads/${q}`, { method: "POST", headers });
  if (from && start.status === 201) return;
  assert.equal(start.status, 202);
  let location = start.headers.get("location")!;
  assert.match(location, /^http:\/\//, "Ollama needs an absolute upload Location");
  for (let off = 0; off < data.length; off += CHUNK) {
    const part = data.subarray(off, Math.min(off + CHUNK, data.length));
    const res = await fetch(location, {
      method: "PATCH",
      body: part,
      headers: { ...headers, "content-type": "application/octet-stream", "content-range": `${off}-${off + part.length - 1}`, "content-length": String(part.length) },
    });
    assert.equal(res.status, 202, await res.text());
    location = res.headers.get("docker-upload-location") ?? res.headers.get("location")!;
  }
  const u = new URL(location);
  u.searchParams.set("digest", digest);
  const put = await fetch(u, { method: "PUT", headers: { ...headers, "content-length": "0" } });
  assert.equal(put.status, 201, await put.text());
}

describe("Ollama protocol (compat.md §4)", () => {
  const model = randomBytes(5 * CHUNK + 4321);
  const template = Buffer.from("{{ .Prompt }}");
  const config = Buffer.from(JSON.stringify({ model_format: "gguf", model_family: "llama", architecture: "amd64", os: "linux" }));
  let manifestBytes: Buffer;

  it("refuses /v2/ requests without credentials, with a challenge", async () => {
    const res = await fetch(`${s.base}/v2/library/tiny/manifests/latest`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer realm=/);
    await res.arrayBuffer();
  });

  it("push: HEAD, POST, PATCH Content-Range a-b, PUT ?digest, mount with from, PUT manifest", async () => {
    await ollamaPushBlob("library/base", model);
    await ollamaPushBlob("library/tiny", model, "library/base");
    await ollamaPushBlob("library/tiny", template);
    await ollamaPushBlob("library/tiny", config);
    manifestBytes = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: sha256(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.ollama.image.model", digest: sha256(model), size: model.length, from: "library/base" },
        { mediaType: "application/vnd.ollama.image.template", digest: sha256(template), size: template.length },
      ],
    }));
    const res = await fetch(`${s.base}/v2/library/tiny/manifests/latest`, {
      method: "PUT", body: manifestBytes,
      headers: { authorization: TOKEN, "content-type": "application/vnd.docker.distribution.manifest.v2+json" },
    });
    assert.equal(res.status, 201, await res.text());
  });

  it("pull: manifest verbatim, HEAD size, 307 absolute Location, 16 parallel Range GETs without Authorization", async () => {
    const m = await fetch(`${s.base}/v2/library/tiny/manifests/latest`, {
      headers: { authorization: TOKEN, accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    assert.equal(m.status, 200);
    const bytes = Buffer.from(await m.arrayBuffer());
    assert.deepEqual(bytes, manifestBytes, "stored verbatim: the local digest equals the registry's");
    assert.equal(m.headers.get("docker-content-digest"), sha256(manifestBytes));
    const layers = (JSON.parse(bytes.toString()) as { layers: { digest: string; size: number }[] }).layers;
    for (const layer of layers) {
      const blob = await ollamaPullBlob(s.base, "library/tiny", layer.digest, { authorization: TOKEN });
      assert.equal(blob.length, layer.size);
      assert.equal(sha256(blob), layer.digest);
    }
  });
});
