/**
 * Retention (`mf registry gc --retain …`), written once as a function of the rm/gc/scrub suite's registry
 * fixture (a served directory, or a replica on S3; rm-gc-scrub.test.ts and rm-gc-scrub-s3.test.ts run both): real `mf registry serve` processes, the real `mf` binary for gc, skopeo
 * as the pulling client. Tag rules (keep-last, keep patterns) with a dry run first; an index and
 * referrers (`subject`, fallback `sha256-…` tags) kept with what keeps them, from the config file's
 * `retain:`; pulled-within (a pull by tag or by digest keeps the manifest, recorded once however often it
 * is pulled); untagged-older-than; the audit log of what gc removed.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readPullTime } from "../../registry/server/pulls.js";
import { pulledPath } from "../../registry/server/storage/layout.js";
import { checkDigest } from "../../registry/server/validate.js";
import { pushBlob, pushImage, sha256, type PushedManifest } from "./oci-client.js";
import { ACCEPT, blobsOf, OCI_INDEX, OCI_MANIFEST, putManifest, status, tags, type ServedRegistry } from "./rm-gc-scrub-suite.js";

/** A signature-like artifact: its own artifactType, one small layer, and `subject` when given. */
async function pushArtifact(base: string, repo: string, ref: string | null, subject: PushedManifest | null): Promise<PushedManifest> {
  const blob = Buffer.from(`signature ${randomBytes(6).toString("hex")}`);
  const layer = await pushBlob(base, repo, blob);
  const empty = await pushBlob(base, repo, Buffer.from("{}"));
  const body = {
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "application/vnd.example.signature",
    config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
    layers: [{ mediaType: "application/vnd.example.signature", digest: layer, size: blob.length }],
    ...(subject ? { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length } } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(body));
  return putManifest(base, repo, ref ?? sha256(bytes), body, OCI_MANIFEST);
}

const manifestStatus = (base: string, repo: string, m: PushedManifest) =>
  status(`${base}/v2/${repo}/manifests/${m.digest}`, { method: "HEAD", headers: { accept: ACCEPT } });

/** `skopeo inspect --raw`: a real client's manifest GET. */
function skopeoInspect(base: string, ref: string): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${new URL(base).host}/${ref}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("error", rej);
    p.on("close", (code) => (code === 0 ? res(out) : rej(new Error(`skopeo inspect ${ref}: ${err}`))));
  });
}

function lines(out: string, prefix: string): string[] {
  return out.split("\n").filter((l) => l.startsWith(prefix)).sort();
}

export function retentionSuite(name: string, start: () => Promise<ServedRegistry>): void {
  describe(`mf registry gc --retain: ${name}`, () => {
    let r: ServedRegistry;
    before(async () => {
      r = await start();
    });
    after(async () => r?.close());

    const gc = (...extra: string[]) => r.mf(["registry", "gc", ...r.storageArgs, "--grace", "0s", ...extra]);
    const ns = () => `r${randomBytes(3).toString("hex")}`;

    it("keep-last and keep patterns: a dry run changes nothing, then the other tags go with their manifests and blobs, audited", async () => {
      const repo = `${ns()}/many`;
      const order = ["latest", "v1.0", "t01", "t02", "t03", "t04", "t05", "t06", "v2"];
      const images = new Map<string, PushedManifest>();
      // one after another: each tag's push time is later than the previous one's
      for (const tag of order) images.set(tag, await pushImage(r.base, repo, tag));
      const rules = ["--retain", "keep-last=2", "--retain", "keep=v*,latest"];
      const doomed = ["t01", "t02", "t03", "t04", "t05"];

      const dry = await gc(...rules, "--dry-run");
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /^retention: keep the 2 most recent tags; keep tags v\*, latest\n/);
      assert.deepEqual(lines(dry.stdout, `would remove tag ${repo}:`), doomed.map((t) => `would remove tag ${repo}:${t} (${images.get(t)!.digest})`));
      assert.deepEqual(lines(dry.stdout, `would remove manifest ${repo}@`), doomed.map((t) => `would remove manifest ${repo}@${images.get(t)!.digest}`).sort());
      assert.match(dry.stdout, /5 tags to remove by retention/);
      assert.deepEqual(await tags(r.base, repo), [...order].sort(), "a dry run deletes no tag");
      for (const m of images.values()) assert.equal(await manifestStatus(r.base, repo, m), 200);

      const auditLog = join(r.dir, `gc-audit-${repo.replace("/", "-")}.jsonl`);
      const run = await gc(...rules, "--audit-log", auditLog);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(lines(run.stdout, `removed tag ${repo}:`), doomed.map((t) => `removed tag ${repo}:${t} (${images.get(t)!.digest})`));
      assert.match(run.stdout, /5 tags removed by retention/);
      assert.deepEqual(await tags(r.base, repo), ["latest", "t06", "v1.0", "v2"]);
      for (const [tag, m] of images) {
        const gone = doomed.includes(tag);
        assert.equal(await manifestStatus(r.base, repo, m), gone ? 404 : 200, tag);
        for (const b of blobsOf(m)) {
          assert.equal(await status(`${r.base}/v2/${repo}/blobs/${b}`, { method: "HEAD" }), gone ? 404 : 200, `${tag} ${b}`);
          if (gone) assert.ok(run.stdout.includes(`removed ${b} (`), `the bytes of ${b} are freed:\n${run.stdout}`);
        }
      }
      assert.match(run.stdout, /blobs removed \(\d+ bytes\)/);
      const audit = (await readFile(auditLog, "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>);
      const mine = audit.filter((e) => e.repository === repo);
      assert.deepEqual(
        mine.filter((e) => e.action === "retain-delete-tag").map((e) => [e.who, e.reference, e.digest]).sort(),
        doomed.map((t) => ["mf registry gc", t, images.get(t)!.digest]),
      );
      assert.deepEqual(mine.filter((e) => e.action === "gc-delete-manifest").map((e) => e.digest).sort(), doomed.map((t) => images.get(t)!.digest).sort());

      const bad = await gc("--retain", "keep-last=ten");
      assert.equal(bad.code, 1);
      assert.equal(bad.stderr, "mf: --retain keep-last=ten: expected a whole number of tags\n");
      const unknown = await gc("--retain", "keep-first=3");
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /^mf: --retain: unknown rule "keep-first"; expected keep-last=N, keep=GLOB/);
    });

    it("an index keeps its children, a kept manifest its referrers and sha256-… tags; a referrer kept otherwise outlives its subject (rules from the config file)", async () => {
      const repo = `${ns()}/multi`;
      const a = await pushImage(r.base, repo, "a-build");
      const b = await pushImage(r.base, repo, "b-build");
      const index = await putManifest(r.base, repo, "v2", {
        schemaVersion: 2, mediaType: OCI_INDEX,
        manifests: [a, b].map((m) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.bytes.length })),
      }, OCI_INDEX);
      const sigA = await pushArtifact(r.base, repo, null, a); // a signature of a child, untagged
      const sbomA = await pushArtifact(r.base, repo, "v2-sbom", a); // a referrer of a child, kept by its own tag
      const old = await pushImage(r.base, repo, "old");
      const sigOld = await pushArtifact(r.base, repo, `sha256-${old.digest.slice(7)}`, old); // fallback tag of a doomed manifest
      const legacy = await pushArtifact(r.base, repo, `sha256-${index.digest.slice(7)}.sig`, null); // cosign-style, no subject
      const config = join(r.dir, `retain-${repo.replace("/", "-")}.yaml`);
      // the registry's one config file: serve's keys beside retain (gc leaves them to serve)
      await writeFile(config, "addr: 127.0.0.1:0\nupload-checkpoint: 32MiB\nretain:\n  keep-last: 0\n  keep: [v*]\n");

      const run = await gc("--config", config);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        lines(run.stdout, `removed tag ${repo}:`).map((l) => l.split(" ")[2]),
        [`${repo}:a-build`, `${repo}:b-build`, `${repo}:old`, `${repo}:sha256-${old.digest.slice(7)}`].sort(),
      );
      assert.deepEqual(await tags(r.base, repo), [`sha256-${index.digest.slice(7)}.sig`, "v2", "v2-sbom"]);
      for (const m of [index, a, b, sigA, sbomA, legacy]) assert.equal(await manifestStatus(r.base, repo, m), 200, m.digest);
      for (const m of [old, sigOld]) assert.equal(await manifestStatus(r.base, repo, m), 404, m.digest);
      const referrers = await fetch(`${r.base}/v2/${repo}/referrers/${a.digest}`);
      assert.deepEqual(((await referrers.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest).sort(), [sigA.digest, sbomA.digest].sort());

      // untag the index: it goes with its children, the untagged signature and the fallback-tagged one;
      // the tagged SBOM stays (kept otherwise), and so does what it references
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/v2`, { method: "DELETE" }), 202);
      const second = await gc("--config", config);
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(await tags(r.base, repo), ["v2-sbom"]);
      for (const m of [index, a, b, sigA, legacy]) assert.equal(await manifestStatus(r.base, repo, m), 404, m.digest);
      assert.equal(await manifestStatus(r.base, repo, sbomA), 200);
      for (const d of blobsOf(sbomA)) assert.equal(await status(`${r.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" }), 200, d);
    });

    it("pulled-within keeps what a client pulled, by tag or by digest, with its tag; repeated pulls write the record once", async () => {
      const repo = `${ns()}/pulled`;
      const p1 = await pushImage(r.base, repo, "p1");
      const p2 = await pushImage(r.base, repo, "p2");
      const u1 = await pushImage(r.base, repo, "u1");
      const u2 = await pushImage(r.base, repo, "u2");
      for (const t of ["u1", "u2"]) assert.equal(await status(`${r.base}/v2/${repo}/manifests/${t}`, { method: "DELETE" }), 202);
      const newest = await pushImage(r.base, repo, "n");

      JSON.parse(await skopeoInspect(r.base, `${repo}:p1`));
      const record = async (m: PushedManifest) => {
        for (;;) {
          const at = await readPullTime(r.driver, repo, checkDigest(m.digest));
          if (at !== null) return at;
          await new Promise((res) => setTimeout(res, 25));
        }
      };
      const first = await record(p1);
      const firstStat = await r.driver.stat(pulledPath(repo, checkDigest(p1.digest)));
      for (let i = 0; i < 4; i++) await skopeoInspect(r.base, `${repo}:p1`);
      await skopeoInspect(r.base, `${repo}@${u1.digest}`);
      await record(u1); // written after the pulls of p1 above were answered
      assert.equal(await readPullTime(r.driver, repo, checkDigest(p1.digest)), first, "later pulls within the interval do not rewrite it");
      assert.equal((await r.driver.stat(pulledPath(repo, checkDigest(p1.digest))))?.modifiedMs, firstStat?.modifiedMs);
      assert.equal(await readPullTime(r.driver, repo, checkDigest(p2.digest)), null, "a push is no pull");

      const run = await gc("--retain", "keep-last=1", "--retain", "pulled-within=1h");
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await tags(r.base, repo), ["n", "p1"]);
      for (const m of [p1, u1, newest]) assert.equal(await manifestStatus(r.base, repo, m), 200, m.digest);
      for (const m of [p2, u2]) assert.equal(await manifestStatus(r.base, repo, m), 404, m.digest);
      assert.equal(await readPullTime(r.driver, repo, checkDigest(p1.digest)), first);

      // without pulled-within the same rules let the pulled ones go, and their records with them
      const plain = await gc("--retain", "keep-last=1");
      assert.equal(plain.code, 0, plain.stderr);
      assert.deepEqual(await tags(r.base, repo), ["n"]);
      for (const m of [p1, u1]) {
        assert.equal(await manifestStatus(r.base, repo, m), 404, m.digest);
        assert.equal(await r.driver.stat(pulledPath(repo, checkDigest(m.digest))), null, "the pull record goes with its manifest");
      }
    });

    it("untagged-older-than keeps an untagged manifest until it is that old; without tag rules no tag is deleted", async () => {
      const repo = `${ns()}/untagged`;
      const loose = await pushImage(r.base, repo, "loose");
      const tagged = await pushImage(r.base, repo, "kept");
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/loose`, { method: "DELETE" }), 202);
      const young = await gc("--retain", "untagged-older-than=1h");
      assert.equal(young.code, 0, young.stderr);
      assert.ok(!young.stdout.includes(loose.digest), young.stdout);
      assert.equal(await manifestStatus(r.base, repo, loose), 200);
      const old = await gc("--retain", "untagged-older-than=0s");
      assert.equal(old.code, 0, old.stderr);
      assert.ok(old.stdout.includes(`removed manifest ${repo}@${loose.digest}`), old.stdout);
      assert.equal(await manifestStatus(r.base, repo, loose), 404);
      assert.deepEqual(await tags(r.base, repo), ["kept"]);
      assert.equal(await manifestStatus(r.base, repo, tagged), 200);
    });
  });
}
