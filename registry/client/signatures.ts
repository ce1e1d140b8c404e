/**
 * Signatures as OCI referrers (docs/signatures.md): the client builds the signature artifact (an empty
 * config, the payload and the armored SSH signature as layers, `subject` = the signed manifest) and pushes
 * it by digest; a registry that does not answer `OCI-Subject` gets the referrers tag scheme (the index at
 * tag `sha256-<hex>`). On pull it lists the manifest's signatures (referrers API, else that tag), fetches
 * each one (digests checked, sizes capped) and verifies it against an allowed_signers list. What a pull
 * verified is kept beside the store (`<store>/signatures/sha256-<hex>.json`) for `mf show`.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { digestOf, parseDigest } from "../../core/digest.js";
import { AuthError, MfError, RegistryError } from "../../core/errors.js";
import { MediaType } from "../../core/mediatypes.js";
import type { LocalStore } from "../../core/store.js";
import type { AllowedSigners } from "../protocol/allowed-signers.js";
import { fingerprint, type SshKey } from "../protocol/keys.js";
import {
  MAX_PAYLOAD_BYTES, MAX_SIGNATURES_CHECKED, MAX_SSHSIG_BYTES, payloadBytes, SIGNATURE_ARTIFACT_TYPE, SIGNATURE_LAYER_TYPE, SIGNATURE_NAMESPACE,
  SIGNATURE_PAYLOAD_TYPE, signatureLayers, signedRepository, verifyModelSignature, type VerifiedSignature,
} from "../protocol/model-signature.js";
import { blobPath, manifestPath } from "../protocol/paths.js";
import { signSshsig } from "../protocol/sshsig.js";
import { discard, header, readAll, type RegistryHttp } from "./http.js";
import type { WireRef } from "./names.js";
import { uploadBlob, blobExists } from "./upload.js";
import { UploadSessions } from "./upload-sessions.js";

/** The manifest a signature is about. */
export interface Subject {
  digest: string;
  mediaType: string;
  size: number;
}

export interface SignatureDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface PushedSignature {
  /** the signature manifest's digest */
  digest: string;
  /** the key's SHA256 fingerprint */
  key: string;
  /** true when the registry lacks the referrers API and the `sha256-<hex>` tag was updated instead */
  fallbackTag: boolean;
}

const EMPTY_JSON = Buffer.from("{}");
const MAX_INDEX_BYTES = 4 << 20;

/** The tag of the referrers tag scheme for `digest`: `sha256-<hex>`. */
export function fallbackTag(digest: string): string {
  return digest.replace(":", "-");
}

/** Reads a small blob of the repository whole, checking its digest. */
async function smallBlob(http: RegistryHttp, w: WireRef, digest: string, max: number, signal?: AbortSignal): Promise<Buffer> {
  if (parseDigest(digest)?.algorithm !== "sha256") throw new AuthError("DENIED", `signature blob ${digest.slice(0, 80)} is not a sha256 digest`);
  const res = await http.send({ method: "GET", url: w.base + blobPath(w.name, digest), signal });
  const bytes = await readAll(res.body, max);
  if (digestOf(bytes) !== digest) throw new AuthError("DENIED", `signature blob ${digest} does not match its digest`);
  return bytes;
}

/** PUTs manifest bytes under a tag or digest; answers the registry's `OCI-Subject` header. */
export async function putManifest(http: RegistryHttp, w: WireRef, reference: string, mediaType: string, bytes: Buffer, signal?: AbortSignal): Promise<string | undefined> {
  const res = await http.send({
    method: "PUT", url: w.base + manifestPath(w.name, reference), headers: { "content-type": mediaType }, body: () => bytes, signal,
    ok: (s) => s === 201 || s === 200 || s === 202,
  });
  discard(res.body);
  return header(res, "oci-subject");
}

/**
 * Signs `subject` (a manifest of `w`'s repository) with `key` and pushes the signature as its referrer.
 * The blobs go through the local store (written once there), so they upload like any other blob.
 */
export async function pushSignature(http: RegistryHttp, store: LocalStore, w: WireRef, subject: Subject, key: SshKey, opts: { nowMs?: number; signal?: AbortSignal } = {}): Promise<PushedSignature> {
  const created = new Date(opts.nowMs ?? Date.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
  const payload = payloadBytes({ repository: signedRepository(w.ref.host, w.name), digest: subject.digest, created });
  const signature = Buffer.from(signSshsig(key, payload, SIGNATURE_NAMESPACE));
  const sessions = new UploadSessions(store.root);
  const blobs = [EMPTY_JSON, payload, signature];
  const written = await Promise.all(blobs.map((b) => store.writeBlob(b)));
  for (const b of written) {
    if ((await blobExists(http, w, b.digest, opts.signal)) !== undefined) continue;
    await uploadBlob({ http, store, sessions, w, digest: b.digest, size: b.size, signal: opts.signal });
  }
  const keyFingerprint = fingerprint(key.publicBlob);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: SIGNATURE_ARTIFACT_TYPE,
    config: { mediaType: MediaType.ociEmpty, digest: written[0]!.digest, size: written[0]!.size, data: EMPTY_JSON.toString("base64") },
    layers: [
      { mediaType: SIGNATURE_PAYLOAD_TYPE, digest: written[1]!.digest, size: written[1]!.size },
      { mediaType: SIGNATURE_LAYER_TYPE, digest: written[2]!.digest, size: written[2]!.size },
    ],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { "org.opencontainers.image.created": created, "dev.mf.signature.key": keyFingerprint },
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = digestOf(bytes);
  const ociSubject = await putManifest(http, w, digest, MediaType.ociManifest, bytes, opts.signal);
  const descriptor: SignatureDescriptor = { mediaType: MediaType.ociManifest, digest, size: bytes.length, artifactType: SIGNATURE_ARTIFACT_TYPE, annotations: manifest.annotations };
  if (ociSubject === undefined) await addToFallbackTag(http, w, subject.digest, descriptor, opts.signal);
  return { digest, key: keyFingerprint, fallbackTag: ociSubject === undefined };
}

/** The referrers index at the fallback tag, or undefined when the tag does not exist. */
async function fallbackIndex(http: RegistryHttp, w: WireRef, subject: string, signal?: AbortSignal): Promise<{ manifests: SignatureDescriptor[] } | undefined> {
  const res = await http.send({
    method: "GET", url: w.base + manifestPath(w.name, fallbackTag(subject)), headers: { accept: MediaType.ociIndex }, signal,
    ok: (s) => s === 200 || s === 404,
  });
  if (res.status === 404) {
    discard(res.body);
    return undefined;
  }
  return { manifests: indexManifests(await readAll(res.body, MAX_INDEX_BYTES), fallbackTag(subject)) };
}

/** The `manifests` of an index the registry answered; MANIFEST_INVALID when it is not one. */
function indexManifests(bytes: Buffer, what: string): SignatureDescriptor[] {
  let v: { manifests?: unknown } | null;
  try {
    v = JSON.parse(bytes.toString("utf8")) as { manifests?: unknown } | null;
  } catch {
    v = null;
  }
  if (!v || typeof v !== "object" || !Array.isArray(v.manifests)) throw new RegistryError("MANIFEST_INVALID", `the registry's ${what} is not an image index`);
  return (v.manifests as unknown[]).filter((m): m is SignatureDescriptor => !!m && typeof m === "object");
}

/** Referrers tag scheme: adds the descriptor to the index at `sha256-<hex>` (created when missing). */
async function addToFallbackTag(http: RegistryHttp, w: WireRef, subject: string, d: SignatureDescriptor, signal?: AbortSignal): Promise<void> {
  const index = (await fallbackIndex(http, w, subject, signal)) ?? { manifests: [] };
  if (index.manifests.some((m) => m.digest === d.digest)) return;
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...index.manifests, d] }));
  await putManifest(http, w, fallbackTag(subject), MediaType.ociIndex, bytes, signal);
}

/** The signature manifests that refer to `digest`: the referrers API, else the fallback tag. */
export async function listSignatures(http: RegistryHttp, w: WireRef, digest: string, signal?: AbortSignal): Promise<SignatureDescriptor[]> {
  const url = `${w.base}/v2/${w.name}/referrers/${digest}?artifactType=${encodeURIComponent(SIGNATURE_ARTIFACT_TYPE)}`;
  const res = await http.send({ method: "GET", url, signal, ok: (s) => s === 200 || s === 404 });
  let manifests: SignatureDescriptor[] | undefined;
  if (res.status === 200 && (header(res, "content-type") ?? "").split(";")[0]!.trim() === MediaType.ociIndex) {
    manifests = indexManifests(await readAll(res.body, MAX_INDEX_BYTES), `referrers of ${digest}`);
  } else {
    discard(res.body);
    manifests = (await fallbackIndex(http, w, digest, signal))?.manifests ?? [];
  }
  return manifests.filter((m) => m && m.artifactType === SIGNATURE_ARTIFACT_TYPE && typeof m.digest === "string");
}

/** One signature artifact's payload and armored signature, fetched and checked against their digests. */
export async function fetchSignature(http: RegistryHttp, w: WireRef, d: SignatureDescriptor, subject: string, signal?: AbortSignal): Promise<{ payload: Buffer; signature: Buffer }> {
  const res = await http.send({ method: "GET", url: w.base + manifestPath(w.name, d.digest), headers: { accept: MediaType.ociManifest }, signal });
  const bytes = await readAll(res.body, 64 * 1024);
  if (digestOf(bytes) !== d.digest) throw new AuthError("DENIED", `signature manifest ${d.digest} does not match its digest`);
  const layers = signatureLayers(bytes);
  if (!layers) throw new AuthError("DENIED", `${d.digest} is not an mf signature artifact`);
  if (layers.subject !== subject) throw new AuthError("DENIED", `signature manifest ${d.digest} refers to ${layers.subject ?? "no manifest"}, not ${subject}`);
  const [payload, signature] = await Promise.all([
    smallBlob(http, w, layers.payload.digest, MAX_PAYLOAD_BYTES, signal),
    smallBlob(http, w, layers.signature.digest, MAX_SSHSIG_BYTES, signal),
  ]);
  return { payload, signature };
}

export interface VerifyPolicy {
  allowed: AllowedSigners;
  /** a principal the key must be listed for (`ssh-keygen -Y verify -I`) */
  identity?: string;
  nowMs?: () => number;
}

/** A signature that verified, with what is needed to check it again with ssh-keygen. */
export interface SignatureRecord extends VerifiedSignature {
  /** the signature manifest's digest */
  manifest: string;
  payload: string;
  signature: string;
  allowedSigners: string;
  verifiedAt: string;
}

/**
 * The signatures of manifest `digest` in `w`'s repository that verify under `policy` (at least one), or
 * DENIED saying why none did: no signature at all, or each one's reason.
 */
export async function verifySignatures(http: RegistryHttp, w: WireRef, digest: string, policy: VerifyPolicy, signal?: AbortSignal): Promise<SignatureRecord[]> {
  const repository = signedRepository(w.ref.host, w.name);
  const found = await listSignatures(http, w, digest, signal);
  const where = `${repository}:${w.tag} (${digest})`;
  if (found.length === 0) throw new AuthError("DENIED", `${where} has no signature: refusing it (signatures are required by ${policy.allowed.source})`);
  const ok: SignatureRecord[] = [];
  const reasons: string[] = [];
  const now = policy.nowMs?.() ?? Date.now();
  for (const d of found.slice(0, MAX_SIGNATURES_CHECKED)) {
    try {
      const { payload, signature } = await fetchSignature(http, w, d, digest, signal);
      const v = verifyModelSignature({ payload, signature, repository, digest, allowed: policy.allowed, nowMs: now, identity: policy.identity });
      ok.push({ ...v, manifest: d.digest, payload: payload.toString("utf8"), signature: signature.toString("utf8"), allowedSigners: policy.allowed.source, verifiedAt: new Date(now).toISOString() });
    } catch (e) {
      // a bad signature artifact (missing, oversized, damaged) is a reason, not the end of the check
      if (!(e instanceof MfError) || signal?.aborted) throw e;
      reasons.push((e as Error).message);
    }
  }
  if (ok.length === 0) {
    const n = found.length === 1 ? "its signature is not accepted" : `none of its ${found.length} signatures is accepted`;
    throw new AuthError("DENIED", `${where}: ${n}: ${reasons.join("; ")}`);
  }
  return ok;
}

function recordPath(store: LocalStore, digest: string): string {
  const d = parseDigest(digest);
  if (!d) throw new RegistryError("DIGEST_INVALID", `invalid digest ${digest.slice(0, 80)}`);
  return join(store.root, "signatures", `${d.algorithm}-${d.hex}.json`);
}

/** The signatures verified for manifest `digest` on earlier pulls (none when it was never verified). */
export async function readSignatureRecords(store: LocalStore, digest: string): Promise<SignatureRecord[]> {
  try {
    const v = JSON.parse(await readFile(recordPath(store, digest), "utf8")) as unknown;
    return Array.isArray(v) ? (v as SignatureRecord[]) : [];
  } catch {
    return [];
  }
}

/** Keeps what a pull verified (replacing earlier records of the same signature manifests), atomically. */
export async function writeSignatureRecords(store: LocalStore, digest: string, records: SignatureRecord[]): Promise<void> {
  const path = recordPath(store, digest);
  const kept = (await readSignatureRecords(store, digest)).filter((r) => !records.some((n) => n.manifest === r.manifest));
  await mkdir(join(store.root, "signatures"), { recursive: true });
  const tmp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
  await writeFile(tmp, JSON.stringify([...kept, ...records], null, 2));
  await rename(tmp, path);
}
