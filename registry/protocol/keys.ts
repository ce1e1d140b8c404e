/**
 * SSH ed25519 keys as Ollama uses them: an unencrypted OpenSSH private key file (`id_ed25519`) with its
 * public key beside it in authorized_keys form (`.pub`). ssh2 parses and generates the files; node's
 * crypto verifies signatures from the raw 32-byte public key.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import ssh2 from "ssh2";
import { AuthError, MfError } from "../../core/errors.js";

const ED25519 = "ssh-ed25519";

/** A client's private key: signs, and shows its public half. */
export interface SshKey {
  /** the SSH wire blob of the public key (what the `AAAA…` field encodes) */
  publicBlob: Buffer;
  comment: string;
  /** ed25519 signature (64 bytes) over `data` */
  sign(data: Buffer | string): Buffer;
}

/** `ssh-ed25519 AAAA… comment` */
export function publicKeyLine(key: Pick<SshKey, "publicBlob" | "comment">): string {
  return `${ED25519} ${key.publicBlob.toString("base64")}${key.comment ? ` ${key.comment}` : ""}`;
}

/** ssh-keygen's fingerprint: `SHA256:<unpadded base64 of the blob's sha256>`. */
export function fingerprint(publicBlob: Buffer): string {
  return `SHA256:${createHash("sha256").update(publicBlob).digest("base64").replace(/=+$/, "")}`;
}

/** Parses private key text; throws a clear AuthError for encrypted, malformed or non-ed25519 keys. */
export function parsePrivateKey(text: string | Buffer, source = "key"): SshKey {
  let parsed: ReturnType<typeof ssh2.utils.parseKey>;
  try {
    parsed = ssh2.utils.parseKey(text);
  } catch (e) {
    parsed = e as Error;
  }
  if (Array.isArray(parsed)) parsed = parsed[0]!;
  if (parsed instanceof Error) {
    if (/encrypted/i.test(parsed.message)) {
      throw new AuthError("BAD_REQUEST", `${source} is encrypted with a passphrase; mf needs an unencrypted ed25519 key (as Ollama does): remove the passphrase with \`ssh-keygen -p -f ${source}\` or generate one with \`mf key\``);
    }
    throw new AuthError("BAD_REQUEST", `${source} is not an OpenSSH private key (${parsed.message}); generate one with \`mf key\``);
  }
  if (!parsed.isPrivateKey()) throw new AuthError("BAD_REQUEST", `${source} holds a public key; mf needs the private key file (without .pub)`);
  if (parsed.type !== ED25519) throw new AuthError("BAD_REQUEST", `${source} is a ${parsed.type} key; mf signs with ed25519 keys only`);
  const key = parsed;
  return {
    publicBlob: Buffer.from(key.getPublicSSH()),
    comment: key.comment ?? "",
    sign: (data) => {
      const sig = key.sign(typeof data === "string" ? Buffer.from(data) : data);
      if (sig instanceof Error) throw new AuthError("INTERNAL", `signing with ${source} failed: ${sig.message}`);
      return Buffer.from(sig);
    },
  };
}

/** Reads the private key at `path`; a missing file is FILE_NOT_FOUND with a hint. */
export function loadPrivateKey(path: string): SshKey {
  let text: Buffer;
  try {
    text = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new MfError("FILE_NOT_FOUND", `no key at ${path}: create one with \`mf key\` (or point --key / MF_KEY at an ed25519 key)`);
    throw new MfError("FILE_NOT_FOUND", `cannot read key ${path}: ${(e as Error).message}`);
  }
  return parsePrivateKey(text, path);
}

/**
 * The key at `path`, generated first when the file does not exist: an unencrypted OpenSSH ed25519
 * private key (0600) and `path.pub` in authorized_keys form.
 */
/**
 * An ed25519 key pair in OpenSSH's format. ssh2 1.17's generator writes a malformed private key about
 * once in 160 times (ssh2's own parser and ssh-keygen both reject it), so each key is parsed back before
 * it is used, and a malformed one is generated again.
 */
export function generateEd25519(comment: string): { private: string; public: string } {
  for (let attempt = 0; attempt < 32; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment });
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new MfError("INTERNAL", "could not generate a well-formed ed25519 key");
}

export function ensurePrivateKey(path: string, comment = "mf"): { key: SshKey; created: boolean } {
  if (existsSync(path)) return { key: loadPrivateKey(path), created: false };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const pair = generateEd25519(comment);
  try {
    writeFileSync(path, pair.private, { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new MfError("FILE_NOT_FOUND", `cannot write key ${path}: ${(e as Error).message}`);
    return { key: loadPrivateKey(path), created: false };
  }
  chmodSync(path, 0o600);
  const key = loadPrivateKey(path);
  writeFileSync(`${path}.pub`, `${publicKeyLine(key)}\n`, { mode: 0o644 });
  return { key, created: true };
}

/** A public key from the wire or a file. */
export interface PublicKey {
  blob: Buffer;
  /** the 32 raw key bytes */
  raw: Buffer;
  comment: string;
  fingerprint: string;
  keyObject: KeyObject;
}

/** Reads an SSH wire-format string (uint32 length + bytes) at `off`. */
function sshString(buf: Buffer, off: number): { value: Buffer; next: number } | null {
  if (off + 4 > buf.length) return null;
  const len = buf.readUInt32BE(off);
  if (off + 4 + len > buf.length) return null;
  return { value: buf.subarray(off + 4, off + 4 + len), next: off + 4 + len };
}

/** Decodes a public key blob (`string "ssh-ed25519"`, `string key[32]`); null when it is anything else. */
export function publicKeyFromBlob(blob: Buffer, comment = ""): PublicKey | null {
  const type = sshString(blob, 0);
  if (!type || type.value.toString("latin1") !== ED25519) return null;
  const raw = sshString(blob, type.next);
  if (!raw || raw.value.length !== 32 || raw.next !== blob.length) return null;
  const keyObject = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.value.toString("base64url") }, format: "jwk" });
  return { blob: Buffer.from(blob), raw: Buffer.from(raw.value), comment, fingerprint: fingerprint(blob), keyObject };
}

/** Parses an authorized_keys line `ssh-ed25519 AAAA… [comment]`; throws a clear error otherwise. */
export function parsePublicKeyLine(line: string): PublicKey {
  const m = /^\s*(\S+)\s+([A-Za-z0-9+/]+={0,2})(?:\s+(.*?))?\s*$/.exec(line);
  if (!m) throw new AuthError("BAD_REQUEST", `not an authorized_keys line: "${line.slice(0, 40)}…"`);
  if (m[1] !== ED25519) throw new AuthError("BAD_REQUEST", `${m[1]} keys are not supported; use ssh-ed25519 keys`);
  const key = publicKeyFromBlob(Buffer.from(m[2]!, "base64"), m[3] ?? "");
  if (!key) throw new AuthError("BAD_REQUEST", `malformed ssh-ed25519 public key "${m[2]!.slice(0, 24)}…"`);
  return key;
}

/** Does `signature` (64 bytes) sign `data` under `key`? */
export function verifySignature(key: PublicKey, data: Buffer | string, signature: Buffer): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, typeof data === "string" ? Buffer.from(data) : data, key.keyObject, signature);
  } catch {
    return false;
  }
}
