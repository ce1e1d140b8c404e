/** Shared setup of the signature suites: ssh-keygen keys, an allowed_signers file, a built model, mf with its own home. */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { TINY, writeLlamaGguf } from "../../../fixtures/gguf/index.js";
import { runMf, type MfRun } from "../run-mf.js";

export const NO_SSH_KEYGEN = spawnSync("sh", ["-c", "command -v ssh-keygen"]).status === 0 ? undefined : "ssh-keygen is not installed";
export const SIG_TYPE = "application/vnd.mf.signature.v1+sshsig";

export function sshKeygen(args: string[], input?: string | Buffer): { status: number | null; out: string } {
  const r = spawnSync("ssh-keygen", args, { input });
  return { status: r.status, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

/** A new ed25519 key at `path` (ssh-keygen); returns its `ssh-ed25519 AAAA…` and its SHA256 fingerprint. */
export async function newKey(path: string): Promise<{ path: string; pub: string; fingerprint: string }> {
  const r = sshKeygen(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path]);
  if (r.status !== 0) throw new Error(r.out);
  const pub = (await readFile(`${path}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
  return { path, pub, fingerprint: sshKeygen(["-lf", `${path}.pub`]).out.split(" ")[1]! };
}

/** A store of its own: `mf` with MF_MODELS and MF_HOME under `dir`. */
export function mfIn(dir: string): (args: string[]) => Promise<MfRun> {
  return (args) => runMf(args, { MF_MODELS: join(dir, "models"), MF_HOME: join(dir, "home") });
}

/** Builds a tiny model as `name` in the store of `run`. */
export async function buildTiny(run: (args: string[]) => Promise<MfRun>, dir: string, name: string, system = "signed"): Promise<void> {
  const ctx = join(dir, `ctx-${system.replace(/\W/g, "")}`);
  await mkdir(ctx, { recursive: true });
  await writeLlamaGguf(join(ctx, "tiny.gguf"), TINY);
  await writeFile(join(ctx, "Modelfile"), `FROM ./tiny.gguf\nSYSTEM ${system}\n`);
  const r = await run(["build", "-q", "-t", name, ctx]);
  if (r.code !== 0) throw new Error(`mf build: ${r.stderr}`);
}

export async function getJson(url: string, accept = "application/json"): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await request(url, { headers: { accept }, maxRedirections: 2 } as never);
  const text = await r.body.text();
  return { status: r.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

export async function getBytes(url: string): Promise<Buffer> {
  let r = await request(url);
  if (r.statusCode === 307) {
    await r.body.dump();
    r = await request(new URL(String(r.headers.location), url).toString());
  }
  return Buffer.from(await r.body.arrayBuffer());
}

/** The payload and signature of a signature manifest, fetched from the registry at `base`. */
export async function signatureParts(base: string, name: string, digest: string): Promise<{ payload: Buffer; signature: Buffer; manifest: Record<string, unknown> }> {
  const m = (await getJson(`${base}/v2/${name}/manifests/${digest}`, "application/vnd.oci.image.manifest.v1+json")).body;
  const layers = m.layers as { mediaType: string; digest: string }[];
  const payload = await getBytes(`${base}/v2/${name}/blobs/${layers.find((l) => l.mediaType.endsWith("payload.v1+json"))!.digest}`);
  const signature = await getBytes(`${base}/v2/${name}/blobs/${layers.find((l) => l.mediaType === SIG_TYPE)!.digest}`);
  return { payload, signature, manifest: m };
}

/** A blob into repository `name` by hand (POST, then PUT with the bytes): no mf code involved. */
export async function putBlob(base: string, name: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const post = await request(`${base}/v2/${name}/blobs/uploads/`, { method: "POST", headers: { "content-length": "0" } });
  await post.body.dump();
  const loc = new URL(String(post.headers.location), base);
  loc.searchParams.set("digest", digest);
  const put = await request(loc.toString(), { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: bytes });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`blob PUT answered ${put.statusCode}`);
  return { digest, size: bytes.length };
}

export async function putManifestBytes(base: string, name: string, reference: string, bytes: Buffer, type: string): Promise<{ status: number; text: string }> {
  const r = await request(`${base}/v2/${name}/manifests/${reference}`, { method: "PUT", headers: { "content-type": type }, body: bytes });
  return { status: r.statusCode, text: await r.body.text() };
}

/** A signature artifact made by hand (as docs/signatures.md describes it) over `payload` and an armored `signature`. */
export async function pushSignatureByHand(base: string, name: string, subject: { digest: string; size: number; mediaType: string }, payload: Buffer, signature: Buffer): Promise<string> {
  const config = await putBlob(base, name, Buffer.from("{}"));
  const p = await putBlob(base, name, payload);
  const s = await putBlob(base, name, signature);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: SIG_TYPE,
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.mf.signature.payload.v1+json", ...p }, { mediaType: SIG_TYPE, ...s }],
    subject,
  }));
  const digest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;
  const r = await putManifestBytes(base, name, digest, manifest, "application/vnd.oci.image.manifest.v1+json");
  if (r.status !== 201) throw new Error(`signature manifest PUT answered ${r.status}: ${r.text}`);
  return digest;
}

/** The manifest a tag points at, as a subject descriptor. */
export async function subjectOf(base: string, name: string, tag: string): Promise<{ digest: string; size: number; mediaType: string }> {
  const r = await request(`${base}/v2/${name}/manifests/${tag}`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" } });
  const bytes = Buffer.from(await r.body.arrayBuffer());
  return { digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, size: bytes.length, mediaType: (JSON.parse(bytes.toString()) as { mediaType: string }).mediaType };
}
