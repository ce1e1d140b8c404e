/**
 * SSH signatures written by mf's own sshsig code, checked both ways against the real ssh-keygen: what mf
 * signs `ssh-keygen -Y verify` accepts, what `ssh-keygen -Y sign` signs mf accepts; and each refusal
 * (forged, another namespace, another repository or manifest, an expired, not-yet-valid, unknown or
 * namespace-limited key) says what is wrong.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseAllowedSigners } from "../../../registry/protocol/allowed-signers.js";
import { loadPrivateKey } from "../../../registry/protocol/keys.js";
import { payloadBytes, verifyModelSignature } from "../../../registry/protocol/model-signature.js";
import { armor, encodeSshsig, parseSshsig, signSshsig } from "../../../registry/protocol/sshsig.js";

const NO_SSH_KEYGEN = spawnSync("sh", ["-c", "command -v ssh-keygen"]).status === 0 ? undefined : "ssh-keygen is not installed";

function sshKeygen(args: string[], input?: string | Buffer): { status: number | null; out: string } {
  const r = spawnSync("ssh-keygen", args, { input });
  return { status: r.status, out: `${r.stdout.toString()}${r.stderr.toString()}` };
}

describe("sshsig: mf and ssh-keygen, both ways", { skip: NO_SSH_KEYGEN }, () => {
  let dir: string;
  let alice: string;
  let mallory: string;
  let alicePub: string;
  let allowed: string;
  const repository = "registry.example.com/team/mario";
  const digest = `sha256:${"ab".repeat(32)}`;
  const payload = payloadBytes({ repository, digest, created: "2026-12-02T08:00:00Z" });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mf-sshsig-"));
    alice = join(dir, "alice");
    mallory = join(dir, "mallory");
    for (const k of [alice, mallory]) assert.equal(sshKeygen(["-q", "-t", "ed25519", "-N", "", "-C", "k", "-f", k]).status, 0);
    alicePub = (await readFile(`${alice}.pub`, "utf8")).trim().split(" ").slice(0, 2).join(" ");
    allowed = join(dir, "allowed_signers");
    await writeFile(allowed, `# team signers\nalice@example.com ${alicePub}\n`);
    await writeFile(join(dir, "payload"), payload);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fingerprintOf = (pub: string) => sshKeygen(["-lf", pub]).out.split(" ")[1]!;

  it("ssh-keygen -Y verify accepts a signature mf made, and names the signer", async () => {
    const sig = signSshsig(loadPrivateKey(alice), payload, "mf-model");
    await writeFile(join(dir, "mf.sig"), sig);
    const ok = sshKeygen(["-Y", "verify", "-n", "mf-model", "-f", allowed, "-I", "alice@example.com", "-s", join(dir, "mf.sig")], payload);
    assert.equal(ok.status, 0, ok.out);
    assert.match(ok.out, new RegExp(`Good "mf-model" signature for alice@example.com with ED25519 key ${fingerprintOf(`${alice}.pub`).replace(/[+/]/g, "\\$&")}`));
    // ssh-keygen itself refuses it for another namespace and for other bytes
    assert.notEqual(sshKeygen(["-Y", "verify", "-n", "file", "-f", allowed, "-I", "alice@example.com", "-s", join(dir, "mf.sig")], payload).status, 0);
    assert.notEqual(sshKeygen(["-Y", "verify", "-n", "mf-model", "-f", allowed, "-I", "alice@example.com", "-s", join(dir, "mf.sig")], Buffer.concat([payload, Buffer.from(" ")])).status, 0);
  });

  it("mf verifies a signature ssh-keygen -Y sign made, and reports principal and fingerprint", async () => {
    await rm(join(dir, "payload.sig"), { force: true });
    const r = sshKeygen(["-Y", "sign", "-n", "mf-model", "-f", alice, join(dir, "payload")]);
    assert.equal(r.status, 0, r.out);
    const sig = await readFile(join(dir, "payload.sig"), "utf8");
    const v = verifyModelSignature({ payload, signature: sig, repository, digest, allowed: parseAllowedSigners(await readFile(allowed, "utf8"), allowed), nowMs: Date.now() });
    assert.deepEqual(v.signer.principals, ["alice@example.com"]);
    assert.equal(v.signer.fingerprint, fingerprintOf(`${alice}.pub`));
    assert.equal(v.created, "2026-12-02T08:00:00Z");
    // the same signature, made by mf, is byte for byte what ssh-keygen writes (ed25519 is deterministic)
    assert.equal(signSshsig(loadPrivateKey(alice), payload, "mf-model"), sig);
    // and one hashed with sha256 (ssh-keygen -O hashalg=sha256) verifies too
    await rm(join(dir, "payload.sig"), { force: true });
    assert.equal(sshKeygen(["-Y", "sign", "-n", "mf-model", "-O", "hashalg=sha256", "-f", alice, join(dir, "payload")]).status, 0);
    const sha256 = await readFile(join(dir, "payload.sig"), "utf8");
    assert.equal(parseSshsig(sha256).hashAlgorithm, "sha256");
    assert.deepEqual(verifyModelSignature({ payload, signature: sha256, repository, digest, allowed: parseAllowedSigners(await readFile(allowed, "utf8"), allowed), nowMs: Date.now() }).signer.principals, ["alice@example.com"]);
  });

  const check = async (o: { signature: string; payload?: Buffer; repository?: string; digest?: string; signers?: string; nowMs?: number }) =>
    verifyModelSignature({
      payload: o.payload ?? payload,
      signature: o.signature,
      repository: o.repository ?? repository,
      digest: o.digest ?? digest,
      allowed: parseAllowedSigners(o.signers ?? `alice@example.com ${alicePub}\n`, "team.allowed_signers"),
      nowMs: o.nowMs ?? Date.now(),
    });

  it("refuses a forged signature: a payload changed after signing", async () => {
    const signature = signSshsig(loadPrivateKey(alice), payload, "mf-model");
    const forged = payloadBytes({ repository, digest: `sha256:${"cd".repeat(32)}`, created: "2026-12-02T08:00:00Z" });
    await assert.rejects(check({ signature, payload: forged, digest: `sha256:${"cd".repeat(32)}` }), /does not match what it claims to sign \(forged or damaged\)/);
    // mallory's signature presented under alice's key
    const m = parseSshsig(signSshsig(loadPrivateKey(mallory), payload, "mf-model"));
    const a = parseSshsig(signature);
    const swapped = armor(encodeSshsig({ ...m, publicKeyBlob: a.publicKeyBlob }));
    await assert.rejects(check({ signature: swapped }), /the signature by SHA256:\S+ does not match what it claims to sign \(forged or damaged\)/);
  });

  it("refuses a signature made for another namespace (ssh-keygen -Y sign -n file)", async () => {
    await rm(join(dir, "payload.sig"), { force: true });
    const r = sshKeygen(["-Y", "sign", "-n", "file", "-f", alice, join(dir, "payload")]);
    assert.equal(r.status, 0, r.out);
    const signature = await readFile(join(dir, "payload.sig"), "utf8");
    await assert.rejects(check({ signature }), /the signature is for namespace "file", not "mf-model"/);
  });

  it("refuses a signature for another repository or another manifest", async () => {
    const signature = signSshsig(loadPrivateKey(alice), payload, "mf-model");
    await assert.rejects(check({ signature, repository: "registry.example.com/other/mario" }),
      /is for repository registry\.example\.com\/team\/mario, not registry\.example\.com\/other\/mario/);
    await assert.rejects(check({ signature, digest: `sha256:${"ef".repeat(32)}` }), /is for manifest sha256:abab.*, not sha256:efef/);
  });

  it("refuses an unknown key, an expired key, a key not yet valid, a key limited to other namespaces", async () => {
    const byMallory = signSshsig(loadPrivateKey(mallory), payload, "mf-model");
    await assert.rejects(check({ signature: byMallory }), /signed by ssh-ed25519 SHA256:\S+, a key not in team\.allowed_signers/);
    const signature = signSshsig(loadPrivateKey(alice), payload, "mf-model");
    await assert.rejects(check({ signature, signers: `alice@example.com valid-before="20200101Z" ${alicePub}\n` }),
      /key SHA256:\S+ of alice@example\.com \(team\.allowed_signers:1\) expired at 2020-01-01T00:00:00Z \(valid-before\)/);
    await assert.rejects(check({ signature, signers: `alice@example.com valid-after="29990101Z" ${alicePub}\n` }), /is not valid before 2999-01-01T00:00:00Z/);
    await assert.rejects(check({ signature, signers: `alice@example.com namespaces="git,file" ${alicePub}\n` }), /may sign only for namespaces git,file, not mf-model/);
    await assert.rejects(check({ signature, signers: `*@example.com cert-authority ${alicePub}\n` }), /not in team\.allowed_signers \(its cert-authority lines are not used/);
    // valid now, namespaces that include mf-model by pattern, several principals
    const ok = await check({ signature, signers: `alice@example.com,ci@example.com namespaces="mf-*",valid-after="20200101",valid-before="29990101Z" ${alicePub}\n` });
    assert.deepEqual(ok.signer.principals, ["alice@example.com", "ci@example.com"]);
    // ssh-keygen agrees that the expired key is refused
    await writeFile(join(dir, "expired"), `alice@example.com valid-before="20200101Z" ${alicePub}\n`);
    await writeFile(join(dir, "mf.sig"), signature);
    assert.notEqual(sshKeygen(["-Y", "verify", "-n", "mf-model", "-f", join(dir, "expired"), "-I", "alice@example.com", "-s", join(dir, "mf.sig")], payload).status, 0);
  });

  it("parses allowed_signers as OpenSSH writes it, and names a malformed line", () => {
    const list = parseAllowedSigners([
      "# comment",
      "",
      `"alice@example.com,bob@example.com" namespaces="mf-model,git",valid-after="20260101" ${alicePub} alice's laptop`,
      "carol@example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ==",
    ].join("\n"), "f");
    assert.equal(list.signers.length, 2);
    assert.deepEqual(list.signers[0]!.principals, ["alice@example.com", "bob@example.com"]);
    assert.deepEqual(list.signers[0]!.namespaces, ["mf-model", "git"]);
    assert.equal(list.signers[0]!.validAfter, new Date(2026, 0, 1).getTime());
    assert.equal(list.signers[1]!.key, undefined);
    assert.throws(() => parseAllowedSigners("alice@example.com valid-before=\"tomorrow\" ssh-ed25519 AAAA\n", "f"), /f:1: valid-before="tomorrow" is not YYYYMMDD/);
    assert.throws(() => parseAllowedSigners("alice@example.com\n", "f"), /f:1: expected "principals \[options\] keytype key"/);
    assert.throws(() => parseAllowedSigners("a no-such-option ssh-ed25519 AAAA\n", "f"), /f:1: unknown option "no-such-option"/);
  });
});
