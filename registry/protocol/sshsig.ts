/**
 * SSH signatures (OpenSSH's PROTOCOL.sshsig), written here over node's crypto: what `ssh-keygen -Y sign`
 * makes and `ssh-keygen -Y verify` checks. A signature is the blob
 *
 *   byte[6] "SSHSIG"  uint32 1  string publickey  string namespace  string reserved
 *   string hash_algorithm  string signature
 *
 * armored as base64 between `-----BEGIN SSH SIGNATURE-----` lines; `signature` signs
 *
 *   byte[6] "SSHSIG"  string namespace  string reserved  string hash_algorithm  string H(message)
 *
 * mf signs with ed25519 keys and sha512 (ssh-keygen's default); it verifies ed25519 signatures with sha512
 * or sha256. The namespace keeps a signature made for one purpose (`file`, `git`) from passing for another.
 */
import { createHash } from "node:crypto";
import { AuthError } from "../../core/errors.js";
import { publicKeyFromBlob, verifySignature, type PublicKey, type SshKey } from "./keys.js";

const MAGIC = Buffer.from("SSHSIG");
const VERSION = 1;
const BEGIN = "-----BEGIN SSH SIGNATURE-----";
const END = "-----END SSH SIGNATURE-----";
/** the largest armored signature read (an ed25519 one is about 300 bytes) */
export const MAX_SSHSIG_BYTES = 16 * 1024;

/** A parsed signature, before any check. */
export interface SshSig {
  publicKeyBlob: Buffer;
  /** the key type the blob names (`ssh-ed25519`, `ssh-rsa`, `…-cert-v01@openssh.com`) */
  keyType: string;
  namespace: string;
  hashAlgorithm: string;
  /** the SSH signature encoding: string sig-type, string sig-bytes */
  signature: Buffer;
}

function sshString(b: Buffer | string): Buffer {
  const v = typeof b === "string" ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([len, v]);
}

class Reader {
  off = 0;
  constructor(readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.off + n > this.buf.length) throw bad("truncated");
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  u32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.u32());
  }
}

function bad(why: string): AuthError {
  return new AuthError("BAD_REQUEST", `not an SSH signature (${why})`);
}

function hashOf(algorithm: string, message: Buffer): Buffer {
  if (algorithm !== "sha512" && algorithm !== "sha256") throw new AuthError("BAD_REQUEST", `SSH signature uses hash "${algorithm.slice(0, 40)}"; only sha512 and sha256 are defined`);
  return createHash(algorithm).update(message).digest();
}

/** The bytes the key signs (PROTOCOL.sshsig §"Signed Data"). */
export function signedData(namespace: string, hashAlgorithm: string, message: Buffer): Buffer {
  return Buffer.concat([MAGIC, sshString(namespace), sshString(""), sshString(hashAlgorithm), sshString(hashOf(hashAlgorithm, message))]);
}

/** Signs `message` under `namespace` with an ed25519 key: the armored text `ssh-keygen -Y verify` reads. */
export function signSshsig(key: SshKey, message: Buffer | string, namespace: string): string {
  if (!namespace) throw new AuthError("BAD_REQUEST", "an SSH signature needs a namespace");
  const msg = typeof message === "string" ? Buffer.from(message) : message;
  const raw = key.sign(signedData(namespace, "sha512", msg));
  return armor(encodeSshsig({ publicKeyBlob: key.publicBlob, namespace, hashAlgorithm: "sha512", signature: Buffer.concat([sshString("ssh-ed25519"), sshString(raw)]) }));
}

/** The signature blob of its parts (what the armor encodes). */
export function encodeSshsig(sig: Omit<SshSig, "keyType">): Buffer {
  const version = Buffer.alloc(4);
  version.writeUInt32BE(VERSION);
  return Buffer.concat([
    MAGIC, version, sshString(sig.publicKeyBlob), sshString(sig.namespace), sshString(""), sshString(sig.hashAlgorithm), sshString(sig.signature),
  ]);
}

/** Base64 in lines of 70, as ssh-keygen writes it. */
export function armor(blob: Buffer): string {
  const b64 = blob.toString("base64");
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  return `${BEGIN}\n${lines.join("\n")}\n${END}\n`;
}

/** Parses an armored signature; throws a clear error for anything else. */
export function parseSshsig(text: string | Buffer): SshSig {
  const s = (typeof text === "string" ? text : text.toString("utf8")).trim();
  if (s.length > MAX_SSHSIG_BYTES) throw bad("too large");
  if (!s.startsWith(BEGIN) || !s.endsWith(END)) throw bad(`no ${BEGIN} … ${END} armor`);
  const body = s.slice(BEGIN.length, s.length - END.length).replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw bad("the armor is not base64");
  const r = new Reader(Buffer.from(body, "base64"));
  if (!r.bytes(6).equals(MAGIC)) throw bad("no SSHSIG preamble");
  const version = r.u32();
  if (version !== VERSION) throw bad(`version ${version}, mf reads version ${VERSION}`);
  const publicKeyBlob = Buffer.from(r.string());
  const namespace = r.string().toString("utf8");
  r.string(); // reserved
  const hashAlgorithm = r.string().toString("utf8");
  const signature = Buffer.from(r.string());
  if (r.off !== r.buf.length) throw bad("trailing bytes");
  const keyType = new Reader(publicKeyBlob).string().toString("latin1");
  return { publicKeyBlob, keyType, namespace, hashAlgorithm, signature };
}

/**
 * Checks a parsed signature over `message` for `namespace`: the key it names must be an ed25519 key and
 * the signature must verify. Returns the signer's public key; throws an AuthError (DENIED) saying what is
 * wrong: another namespace, an unsupported key type, a signature that does not match (forged or damaged).
 */
export function verifySshsig(sig: SshSig, message: Buffer | string, namespace: string): PublicKey {
  if (sig.namespace !== namespace) {
    throw new AuthError("DENIED", `the signature is for namespace "${sig.namespace.slice(0, 60)}", not "${namespace}" (it was made for another purpose)`);
  }
  if (sig.keyType.endsWith("-cert-v01@openssh.com")) {
    throw new AuthError("DENIED", `the signature was made with an SSH certificate (${sig.keyType}); mf verifies plain ed25519 keys only`);
  }
  const key = publicKeyFromBlob(sig.publicKeyBlob);
  if (!key) throw new AuthError("DENIED", `the signature was made with a ${sig.keyType.slice(0, 60)} key; mf verifies ssh-ed25519 signatures only`);
  let type: string;
  let raw: Buffer;
  try {
    const r = new Reader(sig.signature);
    type = r.string().toString("latin1");
    raw = r.string();
  } catch {
    throw new AuthError("DENIED", `the signature by ${key.fingerprint} is malformed`);
  }
  const msg = typeof message === "string" ? Buffer.from(message) : message;
  if (type !== "ssh-ed25519" || !verifySignature(key, signedData(namespace, sig.hashAlgorithm, msg), raw)) {
    throw new AuthError("DENIED", `the signature by ${key.fingerprint} does not match what it claims to sign (forged or damaged)`);
  }
  return key;
}
