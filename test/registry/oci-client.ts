/** Small raw-HTTP helpers for registry tests (fetch, i.e. undici): digests, uploads, envelope checks. */
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export function sha512(data: Uint8Array | string): string {
  return `sha512:${createHash("sha512").update(data).digest("hex")}`;
}

export function randomRepo(prefix = "conf"): string {
  return `${prefix}/r${randomBytes(4).toString("hex")}`;
}

/** Asserts an error answer: status, OCI envelope with the code, and the API-version header. */
export async function expectError(res: Response, status: number, code: string): Promise<void> {
  const text = res.status === status ? await res.text() : "";
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${await res.text().catch(() => "")}`);
  if (res.headers.get("content-length") === "0" || text === "") return assert.fail(`${status} answer without an error envelope`);
  const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors[] in ${text}`);
  assert.equal(body.errors[0]!.code, code, text);
  assert.equal(typeof body.errors[0]!.message, "string");
}

/** Resolves a Location header against the base URL (registries may answer relative ones). */
export function resolveLocation(base: string, res: Response): string {
  const loc = res.headers.get("location");
  assert.ok(loc, `no Location in ${res.status} answer`);
  return new URL(loc, base).toString();
}

export function withQuery(url: string, query: string): string {
  return url + (url.includes("?") ? "&" : "?") + query;
}

/** Uploads a blob with POST then PUT (what every registry supports); returns the digest. */
export async function pushBlob(base: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const loc = await startUpload(base, repo);
  const res = await fetch(withQuery(loc, `digest=${digest}`), {
    method: "PUT",
    body: data,
    headers: { "content-type": "application/octet-stream" },
  });
  assert.equal(res.status, 201, await res.text());
  return digest;
}

/** Starts an upload session; returns its absolute location. */
export async function startUpload(base: string, repo: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(res.status, 202, await res.text());
  return resolveLocation(base, res);
}

/** The same upload location on a restarted server (another port). */
export function rebase(location: string, base: string): string {
  const u = new URL(location);
  return `${base}${u.pathname}${u.search}`;
}

/** The bytes an upload session holds, from `GET <location>` (204 with `Range: 0-<last>`). */
export async function uploadRange(location: string): Promise<number> {
  const res = await fetch(location);
  assert.equal(res.status, 204, await res.text());
  const m = /^0-(\d+)$/.exec(res.headers.get("range") ?? "");
  assert.ok(m, `Range: ${res.headers.get("range")}`);
  return Number(m[1]) + 1;
}

export interface PushedManifest {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

/** Pushes config + one layer and an OCI manifest referencing them. */
export async function pushImage(base: string, repo: string, tag: string, extra: Record<string, unknown> = {}): Promise<PushedManifest> {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: randomBytes(4).toString("hex") }));
  const layer = randomBytes(1000);
  const cd = await pushBlob(base, repo, config);
  const ld = await pushBlob(base, repo, layer);
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: ld, size: layer.length }],
    ...extra,
  }, null, 2));
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
  assert.equal(res.status, 201, await res.text());
  assert.equal(res.headers.get("docker-content-digest"), sha256(bytes));
  return { digest: sha256(bytes), bytes, mediaType };
}
