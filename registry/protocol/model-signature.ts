/**
 * What an mf model signature signs and how one is checked (docs/signatures.md). The signed message is a
 * small JSON payload binding the repository and the manifest digest together, as cosign binds the docker
 * reference:
 *
 *   {"repository":"registry.example.com/team/mario","digest":"sha256:…","created":"2026-12-02T08:00:00Z"}
 *
 * signed as an SSH signature (sshsig.ts) in the namespace `mf-model`. A verifier checks the signature, then
 * that the payload names the repository it pulls from and the digest it got, then the key against an
 * allowed_signers list. An old signed manifest re-tagged into another repository therefore does not verify.
 * The signature travels as an OCI referrer of the manifest: an artifact of type SIGNATURE_ARTIFACT_TYPE
 * whose layers are the payload and the armored signature.
 */
import { AuthError } from "../../core/errors.js";
import { MediaType } from "../../core/mediatypes.js";
import { checkSigner, type AllowedSigners, type Signer } from "./allowed-signers.js";
import { MAX_SSHSIG_BYTES, parseSshsig, verifySshsig } from "./sshsig.js";

export const SIGNATURE_NAMESPACE = "mf-model";
export const SIGNATURE_ARTIFACT_TYPE = "application/vnd.mf.signature.v1+sshsig";
/** the layer holding the armored SSH signature */
export const SIGNATURE_LAYER_TYPE = "application/vnd.mf.signature.v1+sshsig";
/** the layer holding the signed payload */
export const SIGNATURE_PAYLOAD_TYPE = "application/vnd.mf.signature.payload.v1+json";
export const MAX_PAYLOAD_BYTES = 4096;
/** a manifest's signatures checked at most (each check is two small reads and one ed25519 verification) */
export const MAX_SIGNATURES_CHECKED = 64;
export { MAX_SSHSIG_BYTES };

export interface SignaturePayload {
  /** `host/namespace/model`, lowercased, as the registry is reached */
  repository: string;
  /** the manifest digest */
  digest: string;
  /** when it was signed, by the signer's clock (ISO 8601) */
  created?: string;
}

/** The payload bytes, keys in this fixed order. */
export function payloadBytes(p: SignaturePayload): Buffer {
  return Buffer.from(JSON.stringify({ repository: p.repository.toLowerCase(), digest: p.digest, ...(p.created ? { created: p.created } : {}) }));
}

export function parsePayload(bytes: Buffer): SignaturePayload {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new AuthError("DENIED", "the signed payload is not JSON");
  }
  if (!v || typeof v.repository !== "string" || typeof v.digest !== "string") throw new AuthError("DENIED", "the signed payload names no repository and digest");
  return { repository: v.repository, digest: v.digest, ...(typeof v.created === "string" ? { created: v.created } : {}) };
}

/** `host/namespace/model` of a wire name, the spelling payloads use. */
export function signedRepository(host: string, name: string): string {
  return `${host}/${name}`.toLowerCase();
}

export interface VerifiedSignature {
  signer: Signer;
  repository: string;
  digest: string;
  created?: string;
}

export interface VerifyInput {
  payload: Buffer;
  signature: Buffer | string;
  /** what the verifier pulled: `host/namespace/model` and the manifest digest */
  repository: string;
  digest: string;
  allowed: AllowedSigners;
  nowMs: number;
  /** a principal the key must be listed for (as `ssh-keygen -Y verify -I`) */
  identity?: string;
}

/**
 * Checks one signature; throws AuthError DENIED with the reason: another namespace, a forged or damaged
 * signature, a payload for another repository or manifest, a key not allowed (unknown, expired, not yet
 * valid, limited to other namespaces).
 */
export function verifyModelSignature(v: VerifyInput): VerifiedSignature {
  let sig;
  try {
    sig = parseSshsig(v.signature);
  } catch (e) {
    throw new AuthError("DENIED", (e as Error).message);
  }
  const key = verifySshsig(sig, v.payload, SIGNATURE_NAMESPACE);
  const p = parsePayload(v.payload);
  if (p.digest !== v.digest) {
    throw new AuthError("DENIED", `the signature by ${key.fingerprint} is for manifest ${p.digest.slice(0, 80)}, not ${v.digest}`);
  }
  if (p.repository.toLowerCase() !== v.repository.toLowerCase()) {
    throw new AuthError("DENIED", `the signature by ${key.fingerprint} is for repository ${p.repository.slice(0, 200)}, not ${v.repository.toLowerCase()} (a signed manifest copied into another repository does not carry its signature)`);
  }
  const signer = checkSigner(v.allowed, key, SIGNATURE_NAMESPACE, v.nowMs, v.identity);
  return { signer, repository: p.repository, digest: p.digest, ...(p.created ? { created: p.created } : {}) };
}

/** The payload and signature layers of a signature artifact's manifest; null when it is not one. */
export function signatureLayers(manifest: Buffer): { payload: { digest: string; size: number }; signature: { digest: string; size: number }; subject?: string } | null {
  let m: { artifactType?: unknown; layers?: unknown; subject?: { digest?: unknown } };
  try {
    m = JSON.parse(manifest.toString("utf8")) as typeof m;
  } catch {
    return null;
  }
  if (!m || m.artifactType !== SIGNATURE_ARTIFACT_TYPE || !Array.isArray(m.layers)) return null;
  const layers = m.layers as { mediaType?: unknown; digest?: unknown; size?: unknown }[];
  const pick = (type: string, max: number) => {
    const l = layers.find((x) => x && x.mediaType === type);
    return l && typeof l.digest === "string" && typeof l.size === "number" && l.size >= 0 && l.size <= max ? { digest: l.digest, size: l.size } : undefined;
  };
  const payload = pick(SIGNATURE_PAYLOAD_TYPE, MAX_PAYLOAD_BYTES);
  const signature = pick(SIGNATURE_LAYER_TYPE, MAX_SSHSIG_BYTES);
  if (!payload || !signature) return null;
  return { payload, signature, ...(typeof m.subject?.digest === "string" ? { subject: m.subject.digest } : {}) };
}

/**
 * Is this manifest exactly a signature artifact (an OCI manifest of SIGNATURE_ARTIFACT_TYPE with the empty
 * config, the payload and signature layers and nothing else, and a subject)? Only such a manifest is
 * exempt from --require-signed: a model manifest that merely claims the artifactType is not.
 */
export function isSignatureArtifact(manifest: Buffer): boolean {
  let m: { mediaType?: unknown; config?: { mediaType?: unknown }; layers?: unknown };
  try {
    m = JSON.parse(manifest.toString("utf8")) as typeof m;
  } catch {
    return false;
  }
  if (!m || m.mediaType !== MediaType.ociManifest || m.config?.mediaType !== MediaType.ociEmpty || !Array.isArray(m.layers) || m.layers.length !== 2) return false;
  const layers = signatureLayers(manifest);
  return !!layers && layers.subject !== undefined;
}
