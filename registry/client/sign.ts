/**
 * `mf sign`: signs a model as a registry has it, or, when the registry has no such tag (a push refused at
 * its tag by a registry that requires signatures), the local image: its manifest is put by digest (its
 * blobs must be there already), then the signature, then the tag.
 */
import { digestOf } from "../../core/digest.js";
import { MfError } from "../../core/errors.js";
import { MAX_MANIFEST_BYTES } from "../../core/manifest.js";
import { MANIFEST_ACCEPT } from "../../core/mediatypes.js";
import { displayRef, type ModelRef } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import type { SshKey } from "../protocol/keys.js";
import { manifestPath } from "../protocol/paths.js";
import { discard, header, readAll, type RegistryHttp } from "./http.js";
import { wireRef } from "./names.js";
import type { TransferOptions } from "./pull.js";
import { pushSignature, putManifest, type PushedSignature, type Subject } from "./signatures.js";

export interface SignResult {
  /** the signed manifest */
  digest: string;
  signature: PushedSignature;
  /** "registry": the tag's manifest in the registry was signed; "local": the local image, pushed by digest and tagged */
  source: "registry" | "local";
}

export async function signModel(http: RegistryHttp, store: LocalStore, name: ModelRef | string, key: SshKey, opts: TransferOptions = {}): Promise<SignResult> {
  const w = wireRef(name, opts);
  const res = await http.send({ method: "GET", url: w.base + manifestPath(w.name, w.tag), headers: { accept: MANIFEST_ACCEPT }, signal: opts.signal, ok: (s) => s === 200 || s === 404 });
  if (res.status === 200) {
    const bytes = await readAll(res.body, MAX_MANIFEST_BYTES);
    const mediaType = (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType ?? header(res, "content-type")?.split(";")[0] ?? "";
    const digest = digestOf(bytes);
    const signature = await pushSignature(http, store, w, { digest, mediaType, size: bytes.length }, key, { signal: opts.signal });
    return { digest, signature, source: "registry" };
  }
  discard(res.body);
  const local = await store.findModel(w.ref);
  if (!local) throw new MfError("MODEL_NOT_FOUND", `${displayRef(w.ref)} is neither in the registry nor in the local store: nothing to sign`);
  const subject: Subject = { digest: local.digest, mediaType: local.manifest.mediaType, size: local.bytes.length };
  try {
    await putManifest(http, w, local.digest, subject.mediaType, local.bytes, opts.signal);
  } catch (e) {
    if (e instanceof MfError && e.code === "MANIFEST_BLOB_UNKNOWN") {
      throw new MfError("MANIFEST_BLOB_UNKNOWN", `the registry lacks the blobs of ${displayRef(w.ref)}: push and sign it in one go with \`mf push --sign ${displayRef(w.ref)}\``, { cause: e });
    }
    throw e;
  }
  const signature = await pushSignature(http, store, w, subject, key, { signal: opts.signal });
  await putManifest(http, w, w.tag, subject.mediaType, local.bytes, opts.signal);
  return { digest: local.digest, signature, source: "local" };
}
