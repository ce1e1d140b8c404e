/**
 * `mf push --sign` and `mf sign` with real processes: the signature lands as an OCI referrer of the
 * manifest (mf registry serve's referrers API), or under the `sha256-<hex>` tag on Debian's docker-registry
 * (no referrers API); real `ssh-keygen -Y verify` accepts what mf signed, bound to repository and digest.
 */
import { strict as assert } from "node:assert";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Cleanup, startDistribution, type DistributionRegistry } from "../peers.js";
import { DISTRIBUTION_MISSING } from "../client/helpers.js";
import { buildTiny, getJson, mfIn, newKey, NO_SSH_KEYGEN, SIG_TYPE, signatureParts, sshKeygen } from "./helpers.js";

describe("mf push --sign, mf sign", { skip: NO_SSH_KEYGEN }, () => {
  const c = new Cleanup();
  let dir: string;
  let base: string;
  let host: string;
  let alice: Awaited<ReturnType<typeof newKey>>;
  let mf: ReturnType<typeof mfIn>;
  let distribution: DistributionRegistry | null = null;

  before(async () => {
    dir = await c.tempDir("mf-sign-");
    base = (await c.serve(join(dir, "registry"))).base;
    host = new URL(base).host;
    alice = await newKey(join(dir, "alice"));
    await writeFile(join(dir, "allowed_signers"), `alice@example.com ${alice.pub}\n`);
    mf = mfIn(dir);
    await buildTiny(mf, dir, `${host}/team/mario:v1`);
  });
  after(async () => {
    await distribution?.close();
    await c.cleanup();
  });

  const ssh = async (payload: Buffer, signature: Buffer, namespace = "mf-model") => {
    await writeFile(join(dir, "got.sig"), signature);
    return sshKeygen(["-Y", "verify", "-n", namespace, "-f", join(dir, "allowed_signers"), "-I", "alice@example.com", "-s", join(dir, "got.sig")], payload);
  };

  it("mf push --sign pushes a referrer whose signature ssh-keygen -Y verify accepts, bound to repository and digest", async () => {
    const r = await mf(["push", "--insecure", "--sign", "--key", alice.path, `${host}/team/mario:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`signed with ${alice.fingerprint.replace(/[+/]/g, "\\$&")} \\(${alice.path}\\): signature sha256:[0-9a-f]{64}\\n`));
    const digest = /pushed \S+ \((sha256:[0-9a-f]{64})\)/.exec(r.stderr)![1]!;
    const refs = await getJson(`${base}/v2/team/mario/referrers/${digest}?artifactType=${encodeURIComponent(SIG_TYPE)}`);
    const manifests = refs.body.manifests as { digest: string; artifactType: string }[];
    assert.equal(manifests.length, 1);
    assert.equal(manifests[0]!.artifactType, SIG_TYPE);
    const { payload, signature, manifest } = await signatureParts(base, "team/mario", manifests[0]!.digest);
    assert.equal((manifest.subject as { digest: string }).digest, digest);
    const p = JSON.parse(payload.toString()) as { repository: string; digest: string; created: string };
    assert.equal(p.repository, `${host}/team/mario`);
    assert.equal(p.digest, digest);
    const ok = await ssh(payload, signature);
    assert.equal(ok.status, 0, ok.out);
    assert.match(ok.out, /Good "mf-model" signature for alice@example.com/);
    assert.notEqual((await ssh(payload, signature, "file")).status, 0);
  });

  it("mf sign signs what the registry has under the tag; a second signature is a second referrer", async () => {
    const bob = await newKey(join(dir, "bob"));
    const r = await mf(["sign", "--insecure", "--key", bob.path, `${host}/team/mario:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /as the registry has it, with SHA256:\S+ /);
    const digest = /\((sha256:[0-9a-f]{64})\)/.exec(r.stderr)![1]!;
    const refs = await getJson(`${base}/v2/team/mario/referrers/${digest}`);
    assert.equal((refs.body.manifests as unknown[]).length, 2);
  });

  it("mf sign of a model in neither place, and with a missing key, says so", async () => {
    const none = await mf(["sign", "--insecure", "--key", alice.path, `${host}/team/nothing:v1`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /is neither in the registry nor in the local store: nothing to sign/);
    const nokey = await mf(["sign", "--insecure", "--key", join(dir, "no-such-key"), `${host}/team/mario:v1`]);
    assert.equal(nokey.code, 1);
    assert.match(nokey.stderr, /no key at .*no-such-key/);
  });

  it("against a registry without the referrers API (docker-registry), the signature goes under the sha256-<hex> tag, and pull --verify finds it there", { skip: DISTRIBUTION_MISSING }, async () => {
    distribution = (await startDistribution())!;
    const dhost = new URL(distribution.base).host;
    const cp = await mf(["cp", `${host}/team/mario:v1`, `${dhost}/team/mario:v1`]);
    assert.equal(cp.code, 0, cp.stderr);
    const r = await mf(["push", "--insecure", "--sign", "--key", alice.path, `${dhost}/team/mario:v1`]);
    assert.equal(r.code, 0, r.stderr);
    const digest = /pushed \S+ \((sha256:[0-9a-f]{64})\)/.exec(r.stderr)![1]!;
    assert.match(r.stderr, new RegExp(`listed under tag sha256-${digest.slice(7)}: the registry has no referrers API`));
    const index = await getJson(`${distribution.base}/v2/team/mario/manifests/sha256-${digest.slice(7)}`, "application/vnd.oci.image.index.v1+json");
    assert.equal(index.status, 200);
    const manifests = index.body.manifests as { digest: string; artifactType: string }[];
    assert.equal(manifests.length, 1);
    assert.equal(manifests[0]!.artifactType, SIG_TYPE);
    const { payload, signature } = await signatureParts(distribution.base, "team/mario", manifests[0]!.digest);
    assert.equal(JSON.parse(payload.toString()).repository, `${dhost}/team/mario`);
    assert.equal((await ssh(payload, signature)).status, 0);
    // mf pull --verify reads it back through the same tag
    const pull = await mfIn(join(dir, "puller"))(["pull", "--insecure", "--allowed-signers", join(dir, "allowed_signers"), `${dhost}/team/mario:v1`]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stderr, new RegExp(`verified: signed by alice@example\\.com .* for ${dhost.replace(/\./g, "\\.")}/team/mario`));
    // a second signature (another key) is added to the same index
    const carol = await newKey(join(dir, "carol"));
    const again = await mf(["sign", "--insecure", "--key", carol.path, `${dhost}/team/mario:v1`]);
    assert.equal(again.code, 0, again.stderr);
    const index2 = await getJson(`${distribution.base}/v2/team/mario/manifests/sha256-${digest.slice(7)}`, "application/vnd.oci.image.index.v1+json");
    assert.equal((index2.body.manifests as unknown[]).length, 2);
  });
});
