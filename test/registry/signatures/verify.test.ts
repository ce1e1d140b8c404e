/**
 * `mf pull --verify` and the config's `verify` rules, with real processes: a pull refuses an image unless a
 * signature by a key in allowed_signers verifies (this repository, this digest, namespace mf-model, key
 * valid now) — with mf pull, a FROM base of mf build, mf serve's /api/pull — says why when not (no signature, forged, another namespace, another repository, an unknown
 * or expired key), stores nothing then, and reports who signed when it does.
 */
import { strict as assert } from "node:assert";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { armor, encodeSshsig, parseSshsig } from "../../../registry/protocol/sshsig.js";
import { request } from "undici";
import { startMfServe } from "../../helpers/mf.js";
import { Cleanup } from "../peers.js";
import { buildTiny, mfIn, newKey, NO_SSH_KEYGEN, pushSignatureByHand, signatureParts, sshKeygen, subjectOf, getJson } from "./helpers.js";

describe("mf pull --verify", { skip: NO_SSH_KEYGEN }, () => {
  const c = new Cleanup();
  let dir: string;
  let base: string;
  let host: string;
  let alice: Awaited<ReturnType<typeof newKey>>;
  let mallory: Awaited<ReturnType<typeof newKey>>;
  let allowed: string;
  let pusher: ReturnType<typeof mfIn>;
  let n = 0;
  /** a fresh store to pull into */
  const puller = () => mfIn(join(dir, `puller-${++n}`));

  before(async () => {
    dir = await c.tempDir("mf-verify-");
    base = (await c.serve(join(dir, "registry"))).base;
    host = new URL(base).host;
    alice = await newKey(join(dir, "alice"));
    mallory = await newKey(join(dir, "mallory"));
    allowed = join(dir, "allowed_signers");
    await writeFile(allowed, `alice@example.com ${alice.pub}\n`);
    pusher = mfIn(join(dir, "pusher"));
    await buildTiny(pusher, dir, `${host}/team/mario:v1`);
    const push = await pusher(["push", "--insecure", "--sign", "--key", alice.path, `${host}/team/mario:v1`]);
    assert.equal(push.code, 0, push.stderr);
    for (const name of ["plain", "nsfile", "forged", "luigi", "mallory"]) {
      assert.equal((await pusher(["cp", `${host}/team/mario:v1`, `${host}/team/${name}:v1`])).code, 0);
      const flags = name === "mallory" ? ["--sign", "--key", mallory.path] : [];
      const r = await pusher(["push", "--insecure", ...flags, `${host}/team/${name}:v1`]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => c.cleanup());

  /** a pull that must be refused with `message`, leaving nothing in the store */
  const refused = async (name: string, message: RegExp, extra: string[] = ["--allowed-signers", allowed]) => {
    const mf = puller();
    const r = await mf(["pull", "--insecure", "--verify", ...extra, `${host}/team/${name}:v1`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    const show = await mf(["show", `${host}/team/${name}:v1`]);
    assert.notEqual(show.code, 0, "a refused image is not stored");
  };

  it("pulls a signed image and reports who signed", async () => {
    const mf = puller();
    const r = await mf(["pull", "--insecure", "--verify", "--allowed-signers", allowed, `${host}/team/mario:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`verified: signed by alice@example\\.com \\(ssh-ed25519 ${alice.fingerprint.replace(/[+/]/g, "\\$&")}\\) at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ for ${host.replace(/\./g, "\\.")}/team/mario\\n`));
    // mf show tells who signed the pulled image, and when
    const show = await mf(["show", `${host}/team/mario:v1`]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`  Signatures\\n    alice@example\\.com\\s+ssh-ed25519 ${alice.fingerprint.replace(/[+/]/g, "\\$&")}, signed \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ for ${host.replace(/\./g, "\\.")}/team/mario, verified `));
    const json = JSON.parse((await mf(["show", "--json", `${host}/team/mario:v1`])).stdout) as { signatures: { principals: string[]; key: string; repository: string }[] };
    assert.deepEqual(json.signatures.map((x) => [x.principals, x.key, x.repository]), [[["alice@example.com"], `ssh-ed25519 ${alice.fingerprint}`, `${host}/team/mario`]]);
    // a pull without verification shows none
    const other = puller();
    assert.equal((await other(["pull", "--insecure", `${host}/team/mario:v1`])).code, 0);
    assert.doesNotMatch((await other(["show", `${host}/team/mario:v1`])).stdout, /Signatures/);
  });

  it("refuses an image with no signature", () => refused("plain", /team\/plain:v1 \(sha256:[0-9a-f]{64}\) has no signature: refusing it/));

  it("refuses a signature made for another namespace", async () => {
    const subject = await subjectOf(base, "team/nsfile", "v1");
    const payload = Buffer.from(JSON.stringify({ repository: `${host}/team/nsfile`, digest: subject.digest }));
    await writeFile(join(dir, "ns.payload"), payload);
    assert.equal(sshKeygen(["-Y", "sign", "-n", "file", "-f", alice.path, join(dir, "ns.payload")]).status, 0);
    await pushSignatureByHand(base, "team/nsfile", subject, payload, await readFile(join(dir, "ns.payload.sig")));
    await refused("nsfile", /team\/nsfile:v1 \(sha256:[0-9a-f]{64}\): its signature is not accepted: the signature is for namespace "file", not "mf-model"/);
  });

  it("refuses a forged signature (alice's key, mallory's signature)", async () => {
    const subject = await subjectOf(base, "team/forged", "v1");
    const payload = Buffer.from(JSON.stringify({ repository: `${host}/team/forged`, digest: subject.digest }));
    await writeFile(join(dir, "forged.payload"), payload);
    await writeFile(join(dir, "alice.payload"), payload);
    assert.equal(sshKeygen(["-Y", "sign", "-n", "mf-model", "-f", mallory.path, join(dir, "forged.payload")]).status, 0);
    assert.equal(sshKeygen(["-Y", "sign", "-n", "mf-model", "-f", alice.path, join(dir, "alice.payload")]).status, 0);
    const byMallory = parseSshsig(await readFile(join(dir, "forged.payload.sig")));
    const byAlice = parseSshsig(await readFile(join(dir, "alice.payload.sig")));
    const forged = Buffer.from(armor(encodeSshsig({ ...byMallory, publicKeyBlob: byAlice.publicKeyBlob })));
    await pushSignatureByHand(base, "team/forged", subject, payload, forged);
    await refused("forged", /the signature by SHA256:\S+ does not match what it claims to sign \(forged or damaged\)/);
  });

  it("refuses a signed manifest copied with its signature into another repository", async () => {
    const subject = await subjectOf(base, "team/luigi", "v1");
    const refs = await getJson(`${base}/v2/team/mario/referrers/${subject.digest}`);
    const { payload, signature } = await signatureParts(base, "team/mario", (refs.body.manifests as { digest: string }[])[0]!.digest);
    await pushSignatureByHand(base, "team/luigi", subject, payload, signature);
    await refused("luigi", new RegExp(`is for repository ${host.replace(/\./g, "\\.")}/team/mario, not ${host.replace(/\./g, "\\.")}/team/luigi`));
  });

  it("refuses an unknown key and an expired one", async () => {
    await refused("mallory", /signed by ssh-ed25519 SHA256:\S+, a key not in .*allowed_signers/);
    const expired = join(dir, "expired_signers");
    await writeFile(expired, `alice@example.com valid-before="20200101Z" ${alice.pub}\n`);
    await refused("mario", /of alice@example\.com \(.*expired_signers:1\) expired at 2020-01-01T00:00:00Z \(valid-before\)/, ["--allowed-signers", expired]);
  });

  it("a verify rule in config.json applies to every pull under it (a FROM base, mf serve's /api/pull); --verify without one says what to do", async () => {
    const home = join(dir, "rules");
    await mkdir(join(home, "home"), { recursive: true });
    await writeFile(join(home, "home", "team.allowed_signers"), `alice@example.com ${alice.pub}\n`);
    await writeFile(join(home, "home", "config.json"), JSON.stringify({ verify: { [`${host}/team`]: "team.allowed_signers" } }));
    const mf = mfIn(home);
    const plain = await mf(["pull", "--insecure", `${host}/team/plain:v1`]);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /has no signature: refusing it \(signatures are required by .*team\.allowed_signers\)/);
    const ok = await mf(["pull", "--insecure", `${host}/team/mario:v1`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /verified: signed by alice@example\.com/);
    // a FROM base is pulled under the same rule
    await mkdir(join(home, "ctx"), { recursive: true });
    await writeFile(join(home, "ctx", "Modelfile"), `FROM ${host}/team/plain:v1\nSYSTEM derived\n`);
    const build = await mf(["build", "--insecure", "-t", "derived", join(home, "ctx")]);
    assert.equal(build.code, 1);
    assert.match(build.stderr, /team\/plain:v1 \(sha256:[0-9a-f]{64}\) has no signature: refusing it/);
    // and so does mf serve's /api/pull
    const serve = await startMfServe(["--no-gpu"], { MF_MODELS: join(home, "served"), MF_HOME: join(home, "home") });
    try {
      const api = async (model: string) => {
        const r = await request(`http://${serve.host}/api/pull`, { method: "POST", body: JSON.stringify({ model, insecure: true, stream: false }) });
        return { status: r.statusCode, body: (await r.body.json()) as { status?: string; error?: string } };
      };
      const refusedApi = await api(`${host}/team/plain:v1`);
      assert.equal(refusedApi.status, 403, JSON.stringify(refusedApi.body));
      assert.match(refusedApi.body.error ?? "", /team\/plain:v1 \(sha256:[0-9a-f]{64}\) has no signature: refusing it/);
      const okApi = await api(`${host}/team/mario:v1`);
      assert.deepEqual([okApi.status, okApi.body.status], [200, "success"]);
    } finally {
      await serve.stop();
    }
    const none = await puller()(["pull", "--insecure", "--verify", `${host}/team/mario:v1`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /--verify: no allowed_signers for .*team\/mario: give --allowed-signers FILE, or add a rule to the "verify" section of .*config\.json/);
  });
});
