/**
 * `mf registry serve --require-signed NAMESPACE=allowed_signers` as a real process: a tag in the namespace
 * is refused (403 DENIED naming the rule) unless its manifest already carries a signature by an allowed key
 * for that repository; `mf push --sign` (by digest, signature, tag) and `mf sign` after a refused push get
 * through; pushes by digest, signature manifests and sha256-<hex> fallback tags are exempt; other
 * namespaces are untouched.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Cleanup, freePort } from "../peers.js";
import { runMf } from "../run-mf.js";
import { buildTiny, getJson, mfIn, newKey, NO_SSH_KEYGEN, putManifestBytes, pushSignatureByHand, signatureParts, sshKeygen, subjectOf } from "./helpers.js";

describe("mf registry serve --require-signed", { skip: NO_SSH_KEYGEN }, () => {
  const c = new Cleanup();
  let dir: string;
  let base: string;
  let host: string;
  let alice: Awaited<ReturnType<typeof newKey>>;
  let mallory: Awaited<ReturnType<typeof newKey>>;
  let allowed: string;
  let expired: string;
  let mf: ReturnType<typeof mfIn>;

  before(async () => {
    dir = await c.tempDir("mf-require-signed-");
    alice = await newKey(join(dir, "alice"));
    mallory = await newKey(join(dir, "mallory"));
    allowed = join(dir, "allowed_signers");
    expired = join(dir, "expired_signers");
    await writeFile(allowed, `alice@example.com ${alice.pub}\n`);
    await writeFile(expired, `alice@example.com valid-before="20200101Z" ${alice.pub}\n`);
    const r = await c.serve(join(dir, "registry"), ["--require-signed", `team=${allowed}`, "--require-signed", `team/old=${expired}`]);
    base = r.base;
    host = new URL(base).host;
    assert.match(r.output(), /signatures required: team=/);
    mf = mfIn(dir);
    await buildTiny(mf, dir, `${host}/team/mario:v1`);
    for (const name of ["team/luigi", "team/bad", "team/old", "team/copy", "other/free"]) {
      assert.equal((await mf(["cp", `${host}/team/mario:v1`, `${host}/${name}:v1`])).code, 0);
    }
  });
  after(() => c.cleanup());

  it("refuses an unsigned tag with 403 DENIED naming the rule; mf sign then signs and tags the pushed image", async () => {
    const push = await mf(["push", "--insecure", `${host}/team/mario:v1`]);
    assert.equal(push.code, 1);
    assert.match(push.stderr, new RegExp(`tag team/mario:v1 refused by --require-signed team=allowed_signers: a tag there may only point at a manifest signed by a key in that file; sha256:[0-9a-f]{64} has no signature`));
    assert.match(push.stderr, /mf push --sign/);
    assert.equal((await getJson(`${base}/v2/team/mario/manifests/v1`)).status, 404, "the refused tag does not exist");
    const sign = await mf(["sign", "--insecure", "--key", alice.path, `${host}/team/mario:v1`]);
    assert.equal(sign.code, 0, sign.stderr);
    assert.match(sign.stderr, /the local image, pushed by digest, signed, then tagged/);
    assert.equal((await getJson(`${base}/v2/team/mario/manifests/v1`, "application/vnd.docker.distribution.manifest.v2+json")).status, 200);
    const pull = await mfIn(join(dir, "puller"))(["pull", "--insecure", "--allowed-signers", allowed, `${host}/team/mario:v1`]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stderr, /verified: signed by alice@example\.com/);
  });

  it("accepts mf push --sign with an allowed key; refuses an unknown key (until the file lists it) and an expired one", async () => {
    const ok = await mf(["push", "--insecure", "--sign", "--key", alice.path, `${host}/team/luigi:v1`]);
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await mf(["push", "--insecure", "--sign", "--key", mallory.path, `${host}/team/bad:v1`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no signature of sha256:[0-9a-f]{64} is accepted: signed by ssh-ed25519 SHA256:\S+, a key not in .*allowed_signers/);
    // the file is read again when it changes: once mallory is listed, the signature already there counts
    await writeFile(allowed, `alice@example.com ${alice.pub}\nmallory@example.com ${mallory.pub}\n`);
    const again = await mf(["push", "--insecure", `${host}/team/bad:v1`]);
    assert.equal(again.code, 0, again.stderr);
    const old = await mf(["push", "--insecure", "--sign", "--key", alice.path, `${host}/team/old:v1`]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /refused by --require-signed team\/old=expired_signers: .*\(expired_signers:1\) expired at 2020-01-01T00:00:00Z \(valid-before\)/);
  });

  it("refuses a tag whose only signature was copied from another repository", async () => {
    const subject = await subjectOf(base, "team/mario", "v1");
    const refs = await getJson(`${base}/v2/team/mario/referrers/${subject.digest}`);
    const { payload, signature } = await signatureParts(base, "team/mario", (refs.body.manifests as { digest: string }[])[0]!.digest);
    // the image's blobs (its tag is refused), its manifest by digest (allowed), the copied signature, then the tag
    const blobs = await mf(["push", "--insecure", `${host}/team/copy:v1`]);
    assert.equal(blobs.code, 1, "the tag is refused");
    const bytes = await manifestBytesOf(base, "team/mario", subject.digest, subject.mediaType);
    assert.equal((await putManifestBytes(base, "team/copy", subject.digest, bytes, subject.mediaType)).status, 201);
    await pushSignatureByHand(base, "team/copy", subject, payload, signature);
    const tag = await putManifestBytes(base, "team/copy", "v1", bytes, subject.mediaType);
    assert.equal(tag.status, 403);
    const err = (JSON.parse(tag.text) as { errors: { code: string; message: string }[] }).errors[0]!;
    assert.equal(err.code, "DENIED");
    assert.match(err.message, new RegExp(`is for repository ${host.replace(/\./g, "\\.")}/team/mario, not ${host.replace(/\./g, "\\.")}/team/copy`));
  });

  it("exempts pushes by digest, signature manifests, sha256-<hex> fallback tags of signatures and other namespaces; not look-alikes", async () => {
    const subject = await subjectOf(base, "team/mario", "v1");
    const bytes = await manifestBytesOf(base, "team/mario", subject.digest, subject.mediaType);
    assert.equal((await putManifestBytes(base, "team/mario", subject.digest, bytes, subject.mediaType)).status, 201);
    const refs = await getJson(`${base}/v2/team/mario/referrers/${subject.digest}`);
    const sig = (refs.body.manifests as { digest: string }[])[0]!.digest;
    const sigBytes = await manifestBytesOf(base, "team/mario", sig, "application/vnd.oci.image.manifest.v1+json");
    assert.equal((await putManifestBytes(base, "team/mario", "a-signature", sigBytes, "application/vnd.oci.image.manifest.v1+json")).status, 201);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }));
    assert.equal((await putManifestBytes(base, "team/mario", `sha256-${subject.digest.slice(7)}`, index, "application/vnd.oci.image.index.v1+json")).status, 201);
    // but a model manifest that only claims the signature artifactType is no signature manifest, and a
    // sha256-<hex> index listing a model is no referrers index
    const sneaky = Buffer.from(JSON.stringify({ ...(JSON.parse(bytes.toString()) as object), artifactType: "application/vnd.mf.signature.v1+sshsig" }));
    const sneakyTag = await putManifestBytes(base, "team/mario", "sneaky", sneaky, subject.mediaType);
    assert.equal(sneakyTag.status, 403, sneakyTag.text);
    assert.match(sneakyTag.text, /"code":"DENIED".*has no signature/);
    const sneakyDigest = `sha256:${createHash("sha256").update(sneaky).digest("hex")}`;
    assert.equal((await putManifestBytes(base, "team/mario", sneakyDigest, sneaky, subject.mediaType)).status, 201, "by digest is allowed");
    const modelIndex = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ mediaType: subject.mediaType, digest: sneakyDigest, size: sneaky.length, artifactType: "application/vnd.mf.signature.v1+sshsig" }],
    }));
    const indexTag = await putManifestBytes(base, "team/mario", `sha256-${"1".repeat(64)}`, modelIndex, "application/vnd.oci.image.index.v1+json");
    assert.equal(indexTag.status, 403, indexTag.text);
    const free = await mf(["push", "--insecure", `${host}/other/free:v1`]);
    assert.equal(free.code, 0, free.stderr);
  });

  it("with --public-url, the repository a signature must name is the public one", async () => {
    // clients reach it as localhost:PORT (its public URL), the test pushes to 127.0.0.1:PORT
    const port = await freePort();
    const pub = await c.serve(join(dir, "registry-public"), ["--addr", `127.0.0.1:${port}`, "--public-url", `http://localhost:${port}`, "--require-signed", `team=${allowed}`]);
    const phost = new URL(pub.base).host;
    assert.equal((await mf(["cp", `${host}/team/mario:v1`, `${phost}/team/mario:v1`])).code, 0);
    // signed for the address it was pushed to, not the public name: refused
    const local = await mf(["push", "--insecure", "--sign", "--key", alice.path, `${phost}/team/mario:v1`]);
    assert.equal(local.code, 1);
    assert.match(local.stderr, new RegExp(`is for repository ${phost.replace(/\./g, "\\.")}/team/mario, not localhost:${port}/team/mario`));
    // a signature for localhost:PORT/team/mario (made with ssh-keygen) lets the tag in
    // the manifest is there by digest (mf push --sign put it so before its tag was refused)
    const digest = (JSON.parse((await mf(["show", "--json", `${phost}/team/mario:v1`])).stdout) as { digest: string }).digest;
    const d = await subjectOf(pub.base, "team/mario", digest);
    const bytes = await manifestBytesOf(pub.base, "team/mario", digest, d.mediaType);
    const payload = Buffer.from(JSON.stringify({ repository: `localhost:${port}/team/mario`, digest: d.digest }));
    await writeFile(join(dir, "public.payload"), payload);
    assert.equal(sshKeygen(["-Y", "sign", "-n", "mf-model", "-f", alice.path, join(dir, "public.payload")]).status, 0);
    await pushSignatureByHand(pub.base, "team/mario", d, payload, await readFile(join(dir, "public.payload.sig")));
    const tag = await putManifestBytes(pub.base, "team/mario", "v1", bytes, d.mediaType);
    assert.equal(tag.status, 201, tag.text);
  });

  it("a malformed --require-signed or allowed_signers file stops the start with a message", async () => {
    const spec = await runMf(["registry", "serve", "--root", join(dir, "r2"), "--addr", "127.0.0.1:0", "--require-signed", "team"]);
    assert.equal(spec.code, 1);
    assert.match(spec.stderr, /--require-signed "team": expected NAMESPACE=ALLOWED_SIGNERS_FILE/);
    await writeFile(join(dir, "broken"), "alice@example.com\n");
    const file = await runMf(["registry", "serve", "--root", join(dir, "r2"), "--addr", "127.0.0.1:0", "--require-signed", `team=${join(dir, "broken")}`]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /broken:1: expected "principals \[options\] keytype key"/);
  });

  async function manifestBytesOf(from: string, name: string, digest: string, type: string): Promise<Buffer> {
    const { request } = await import("undici");
    const r = await request(`${from}/v2/${name}/manifests/${digest}`, { headers: { accept: type } });
    return Buffer.from(await r.body.arrayBuffer());
  }
});
