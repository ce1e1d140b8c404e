/**
 * `--require-signed NAMESPACE=allowed_signers`: a tag in NAMESPACE may only point at a manifest that
 * already has a signature (an mf signature referrer, docs/signatures.md) by a key in that allowed_signers
 * file, for this repository as clients reach this registry (`--public-url`, else the request's Host), valid
 * now. Pushes by digest, signature manifests themselves (exactly shaped as one: isSignatureArtifact) and
 * `sha256-<hex>` fallback tags holding an index of those are exempt; so the
 * workflow is: manifest by digest, its signature, then the tag (`mf push --sign`). A refusal is 403 DENIED
 * naming the rule. The file is read again when it changes; a broken edit keeps the last good list.
 */
import { statSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { digestOf, parseDigest, type ParsedDigest } from "../../core/digest.js";
import { AuthError, MfError } from "../../core/errors.js";
import { parseAllowedSigners, type AllowedSigners } from "../protocol/allowed-signers.js";
import {
  isSignatureArtifact, MAX_PAYLOAD_BYTES, MAX_SIGNATURES_CHECKED, MAX_SSHSIG_BYTES, SIGNATURE_ARTIFACT_TYPE, signatureLayers, signedRepository,
  verifyModelSignature,
} from "../protocol/model-signature.js";
import { OCI_NAME_RE } from "../protocol/paths.js";
import type { RegistryContext, TagGuard } from "./context.js";
import { publicBase } from "./signing.js";
import { checkDigest, digestString } from "./validate.js";

export interface RequireSignedRule {
  /** a namespace (`team`) or repository (`team/mario`): the rule covers it and every name below it */
  scope: string;
  /** the allowed_signers file */
  path: string;
}

const FALLBACK_TAG = /^sha256-[0-9a-f]{64}$/;

/** `NAMESPACE=FILE` as given to --require-signed. */
export function parseRequireSigned(spec: string): RequireSignedRule {
  const eq = spec.indexOf("=");
  const scope = eq < 0 ? "" : spec.slice(0, eq).replace(/\/+$/, "");
  const path = eq < 0 ? "" : spec.slice(eq + 1);
  if (!scope || !path || !OCI_NAME_RE.test(scope)) {
    throw new MfError("BAD_REQUEST", `--require-signed "${spec.slice(0, 200)}": expected NAMESPACE=ALLOWED_SIGNERS_FILE (a namespace such as team, or a repository such as team/mario)`);
  }
  return { scope, path };
}

/** An allowed_signers file, read again when its size or mtime changes; a broken version keeps the last good one. */
class SignersFile {
  private list: AllowedSigners;
  private stamp: string;
  constructor(readonly path: string, private readonly onError: (e: Error) => void) {
    this.stamp = this.statStamp();
    this.list = this.read(); // a broken file stops the start
  }
  private statStamp(): string {
    const st = statSync(this.path, { throwIfNoEntry: false });
    return st ? `${st.size}:${st.mtimeMs}` : "missing";
  }
  private read(): AllowedSigners {
    let text: string;
    try {
      text = readFileSync(this.path, "utf8");
    } catch (e) {
      throw new MfError("FILE_NOT_FOUND", `--require-signed: cannot read ${this.path}: ${(e as Error).message}`);
    }
    // messages go to clients: they name the file, not where it lives on the server
    return parseAllowedSigners(text, basename(this.path));
  }
  current(): AllowedSigners {
    const stamp = this.statStamp();
    if (stamp !== this.stamp) {
      this.stamp = stamp;
      try {
        this.list = this.read();
      } catch (e) {
        this.onError(e as Error);
      }
    }
    return this.list;
  }
}

/** The tag guard for the rules (undefined when there are none). */
export function requireSigned(rules: RequireSignedRule[], opts: { onReloadError?: (path: string, e: Error) => void } = {}): TagGuard | undefined {
  if (rules.length === 0) return undefined;
  const files = new Map<string, SignersFile>();
  for (const r of rules) {
    if (!files.has(r.path)) files.set(r.path, new SignersFile(r.path, (e) => opts.onReloadError?.(r.path, e)));
  }
  const sorted = [...rules].sort((a, b) => b.scope.length - a.scope.length);
  return async (ctx, request, name, tag, digest, bytes) => {
    const rule = sorted.find((r) => name === r.scope || name.startsWith(`${r.scope}/`));
    if (!rule || isSignatureArtifact(bytes)) return;
    if (FALLBACK_TAG.test(tag) && (await isSignatureIndex(ctx, name, bytes))) return;
    const allowed = files.get(rule.path)!.current();
    const repository = signedRepository(new URL(publicBase(request, ctx.settings.publicUrl)).host, name);
    const text = digestString(digest);
    const reasons: string[] = [];
    const referrers = (await ctx.store.referrers(name, digest)).filter((r) => r.artifactType === SIGNATURE_ARTIFACT_TYPE);
    for (const r of referrers.slice(0, MAX_SIGNATURES_CHECKED)) {
      try {
        const parts = await signatureOf(ctx, name, checkDigest(r.digest), text);
        verifyModelSignature({ ...parts, repository, digest: text, allowed, nowMs: ctx.clock() });
        return;
      } catch (e) {
        if (!(e instanceof MfError)) throw e;
        reasons.push(e.message);
      }
    }
    const why = referrers.length === 0 ? `${text} has no signature` : `no signature of ${text} is accepted: ${reasons.join("; ")}`;
    throw new AuthError(
      "DENIED",
      `tag ${name}:${tag} refused by --require-signed ${rule.scope}=${basename(rule.path)}: a tag there may only point at a manifest signed by a key in that file; ` +
        `${why}. Push the manifest by digest, then its signature, then the tag (\`mf push --sign\`, or \`mf sign\` now)`,
      { detail: { rule: `${rule.scope}=${basename(rule.path)}`, digest: text } },
    );
  };
}

/**
 * Is this the index of the referrers tag scheme, listing only signature manifests of this repository?
 * (An index at a `sha256-<hex>` tag that lists a model would let a client pull an unsigned model.)
 */
async function isSignatureIndex(ctx: RegistryContext, name: string, bytes: Buffer): Promise<boolean> {
  let v: { manifests?: unknown };
  try {
    v = JSON.parse(bytes.toString("utf8")) as typeof v;
  } catch {
    return false;
  }
  if (!v || !Array.isArray(v.manifests) || v.manifests.length > 4 * MAX_SIGNATURES_CHECKED) return false;
  for (const entry of v.manifests as { digest?: unknown }[]) {
    const d = typeof entry?.digest === "string" ? parseDigest(entry.digest) : null;
    if (!d || !(await ctx.store.revision(name, d))) return false;
    const m = await ctx.store.manifestBytes(d, 64 * 1024).catch(() => null);
    if (!m || !isSignatureArtifact(m)) return false;
  }
  return true;
}

/** A stored signature manifest's payload and signature, each checked against its digest. */
async function signatureOf(ctx: RegistryContext, name: string, d: ParsedDigest, subject: string): Promise<{ payload: Buffer; signature: Buffer }> {
  if (!(await ctx.store.revision(name, d))) throw new AuthError("DENIED", `signature ${digestString(d)} is gone`);
  const bytes = await ctx.store.manifestBytes(d, 64 * 1024);
  const layers = bytes ? signatureLayers(bytes) : null;
  if (!layers || layers.subject !== subject) throw new AuthError("DENIED", `${digestString(d)} is not an mf signature of ${subject}`);
  const blob = async (l: { digest: string }, max: number) => {
    const bd = checkDigest(l.digest);
    const b = (await ctx.store.repoBlob(name, bd)) ? await ctx.store.manifestBytes(bd, max).catch(() => null) : null;
    if (!b || digestOf(b) !== l.digest) throw new AuthError("DENIED", `signature blob ${l.digest} of ${digestString(d)} is missing or damaged`);
    return b;
  };
  return { payload: await blob(layers.payload, MAX_PAYLOAD_BYTES), signature: await blob(layers.signature, MAX_SSHSIG_BYTES) };
}
