/**
 * Deleting models and getting the space back, written once as a function of a registry fixture (a
 * served directory, or replicas on S3): `mf registry rm` (a tag, or every tag of a repository across
 * pages), `mf registry gc` (untagged manifests, except children of a kept index and referrers of a kept
 * manifest; names containing `.tmp-` are ordinary names), `mf registry scrub` (corrupt blobs, manifests
 * whose blobs are missing). Real `mf registry serve` processes and the real `mf` binary throughout.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { MfResult } from "../helpers/mf.js";
import type { StorageDriver } from "../../registry/server/storage/driver.js";
import { pushBlob, pushImage, sha256, type PushedManifest } from "./oci-client.js";

export interface ServedRegistry {
  /** http://127.0.0.1:PORT of a running `mf registry serve` */
  base: string;
  /** `mf ARGS` (the real binary) */
  mf(args: string[]): Promise<MfResult>;
  /** the flags that name this registry's storage, for gc and scrub (--root DIR, or --storage s3://… …) */
  storageArgs: string[];
  /** replaces the stored bytes of a blob (a disk or bucket gone bad underneath the registry) */
  corruptBlob(digest: string): Promise<void>;
  /** removes a blob's bytes behind the registry's back */
  loseBlob(digest: string): Promise<void>;
  /** the registry's storage, to look at what it holds */
  driver: StorageDriver;
  /** a scratch directory (config and log files) */
  dir: string;
  close(): Promise<void>;
}

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}`;

export async function status(url: string, init: RequestInit = {}): Promise<number> {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
}

export async function putManifest(base: string, repo: string, ref: string, body: object, mediaType: string): Promise<PushedManifest> {
  const bytes = Buffer.from(JSON.stringify(body));
  const res = await fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
  assert.equal(res.status, 201, await res.text());
  return { digest: sha256(bytes), bytes, mediaType };
}

export function blobsOf(m: PushedManifest): string[] {
  const parsed = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  return [parsed.config.digest, ...parsed.layers.map((l) => l.digest)];
}

async function catalog(base: string): Promise<string[]> {
  const res = await fetch(`${base}/v2/_catalog`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

export async function tags(base: string, repo: string): Promise<string[] | number> {
  const res = await fetch(`${base}/v2/${repo}/tags/list`);
  if (res.status !== 200) {
    await res.arrayBuffer();
    return res.status;
  }
  return ((await res.json()) as { tags: string[] }).tags;
}

function removedLines(out: string): string[] {
  return out.split("\n").filter((l) => l.startsWith("removed ")).sort();
}

export function rmGcScrubSuite(name: string, start: () => Promise<ServedRegistry>): void {
  describe(`mf registry rm, gc and scrub: ${name}`, () => {
    let r: ServedRegistry;
    before(async () => {
      r = await start();
    });
    after(async () => r?.close());

    const host = () => new URL(r.base).host;
    const gc = (...extra: string[]) => r.mf(["registry", "gc", ...r.storageArgs, "--grace", "0s", ...extra]);
    const ns = () => `n${randomBytes(3).toString("hex")}`;

    it("a repository named team/model.tmp-v2 and a tag v1.tmp-abc are ordinary: gc --grace 0s keeps them, listings show them", async () => {
      const repo = `${ns()}/model.tmp-v2`;
      const image = await pushImage(r.base, repo, "v1");
      const other = `${ns()}/model`;
      const tagged = await pushImage(r.base, other, "v1.tmp-abc");

      const run = await gc();
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(removedLines(run.stdout), [], run.stdout);

      const got = await fetch(`${r.base}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT } });
      assert.equal(got.status, 200);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), image.bytes);
      for (const d of blobsOf(image)) assert.equal(await status(`${r.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" }), 200, d);
      assert.equal(await status(`${r.base}/v2/${other}/manifests/v1.tmp-abc`, { headers: { accept: ACCEPT } }), 200);
      assert.equal(await status(`${r.base}/v2/${other}/manifests/${tagged.digest}`, { method: "HEAD", headers: { accept: ACCEPT } }), 200);

      assert.ok((await catalog(r.base)).includes(repo), "the catalog lists team/model.tmp-v2");
      assert.deepEqual(await tags(r.base, other), ["v1.tmp-abc"]);
      const ls = await r.mf(["registry", "ls", "--insecure", host()]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.ok(ls.stdout.split("\n").includes(repo), ls.stdout);
      const lsTags = await r.mf(["registry", "ls", "--insecure", `${host()}/${other}`]);
      assert.equal(lsTags.stdout, "v1.tmp-abc\n");
    });

    it("rm REPO:TAG, then gc --grace 0s frees the image (manifest, config, layer); the repository leaves the catalog", async () => {
      const repo = `${ns()}/big`;
      const image = await pushImage(r.base, repo, "v1");
      const rm = await r.mf(["registry", "rm", "--insecure", `${host()}/${repo}:v1`]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stderr, new RegExp(`deleted ${repo}:v1\\b.*mf registry gc`, "s"));
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT } }), 404);

      const dry = await gc("--dry-run");
      assert.equal(dry.code, 0, dry.stderr);
      assert.ok(dry.stdout.includes(`would remove manifest ${repo}@${image.digest}`), dry.stdout);
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/${image.digest}`, { headers: { accept: ACCEPT } }), 200, "a dry run removes nothing");

      const run = await gc();
      assert.equal(run.code, 0, run.stderr);
      const removed = removedLines(run.stdout);
      assert.ok(removed.includes(`removed manifest ${repo}@${image.digest}`), run.stdout);
      for (const d of [image.digest, ...blobsOf(image)]) {
        assert.ok(removed.some((l) => l.startsWith(`removed ${d} (`)), `${d} freed:\n${run.stdout}`);
      }
      assert.match(run.stdout, /1 untagged manifests removed/);
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/${image.digest}`, { headers: { accept: ACCEPT } }), 404);
      for (const d of blobsOf(image)) assert.equal(await status(`${r.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" }), 404, d);
      assert.ok(!(await catalog(r.base)).includes(repo), "an emptied repository leaves the catalog");
      assert.equal(await tags(r.base, repo), 404);
      const again = await gc();
      assert.deepEqual(removedLines(again.stdout), [], "nothing is left to remove");
    });

    it("rm REPO deletes every tag across pages; gc then frees everything and ls no longer lists it", async () => {
      const repo = `${ns()}/many`;
      const a = await pushImage(r.base, repo, "a000");
      const b = await pushImage(r.base, repo, "b000");
      // 150 tags: more than one page of the 100 that `mf registry rm` asks for at a time (put 8 at a time)
      const puts: { m: typeof a; tag: string }[] = [];
      for (let i = 1; i < 75; i++) for (const [m, prefix] of [[a, "a"], [b, "b"]] as const) puts.push({ m, tag: `${prefix}${String(i).padStart(3, "0")}` });
      for (let i = 0; i < puts.length; i += 8) {
        const batch = puts.slice(i, i + 8);
        const codes = await Promise.all(batch.map(({ m, tag }) => status(`${r.base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } })));
        assert.deepEqual(codes, batch.map(() => 201));
      }
      const keep = `${ns()}/kept`;
      const kept = await pushImage(r.base, keep, "v1");

      const rm = await r.mf(["registry", "rm", "--insecure", `${host()}/${repo}`]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.match(rm.stderr, new RegExp(`deleted ${repo} \\(150 tags, 2 manifests\\)`));
      assert.match(rm.stderr, /mf registry gc/);
      assert.equal(await tags(r.base, repo), 404, "no tag is left");
      for (const m of [a, b]) assert.equal(await status(`${r.base}/v2/${repo}/manifests/${m.digest}`, { method: "HEAD", headers: { accept: ACCEPT } }), 404);
      assert.ok(!(await catalog(r.base)).includes(repo));

      const run = await gc();
      assert.equal(run.code, 0, run.stderr);
      for (const d of [a.digest, b.digest, ...blobsOf(a), ...blobsOf(b)]) {
        assert.ok(removedLines(run.stdout).some((l) => l.startsWith(`removed ${d} (`)), `${d} freed:\n${run.stdout}`);
      }
      const ls = await r.mf(["registry", "ls", "--insecure", host()]);
      assert.equal(ls.code, 0, ls.stderr);
      assert.ok(!ls.stdout.split("\n").includes(repo), ls.stdout);
      assert.ok(ls.stdout.split("\n").includes(keep), ls.stdout);
      assert.equal(await status(`${r.base}/v2/${keep}/manifests/v1`, { headers: { accept: ACCEPT } }), 200);
      for (const d of blobsOf(kept)) assert.equal(await status(`${r.base}/v2/${keep}/blobs/${d}`, { method: "HEAD" }), 200);
    });

    it("gc keeps the children of a kept index and the referrers of a kept manifest, and collects them with it", async () => {
      const repo = `${ns()}/multi`;
      const amd = await pushImage(r.base, repo, "amd64");
      const arm = await pushImage(r.base, repo, "arm64");
      const index = await putManifest(r.base, repo, "v1", {
        schemaVersion: 2, mediaType: OCI_INDEX,
        manifests: [amd, arm].map((m) => ({ mediaType: OCI_MANIFEST, digest: m.digest, size: m.bytes.length })),
      }, OCI_INDEX);
      const sigBlob = Buffer.from(`signature ${randomBytes(4).toString("hex")}`);
      const sigBlobDigest = await pushBlob(r.base, repo, sigBlob);
      const emptyConfig = await pushBlob(r.base, repo, Buffer.from("{}"));
      const sig = {
        schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "application/vnd.example.signature",
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: emptyConfig, size: 2 },
        layers: [{ mediaType: "application/vnd.example.signature", digest: sigBlobDigest, size: sigBlob.length }],
        subject: { mediaType: OCI_INDEX, digest: index.digest, size: index.bytes.length },
      };
      const sigBytes = Buffer.from(JSON.stringify(sig));
      const signed = await putManifest(r.base, repo, sha256(sigBytes), sig, OCI_MANIFEST);
      // the children lose their own tags: only the index keeps them
      for (const t of ["amd64", "arm64"]) assert.equal(await status(`${r.base}/v2/${repo}/manifests/${t}`, { method: "DELETE" }), 202);
      const loose = await pushImage(r.base, repo, "loose");
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/loose`, { method: "DELETE" }), 202);

      const run = await gc();
      assert.equal(run.code, 0, run.stderr);
      const manifestsRemoved = (out: string) => removedLines(out).filter((l) => l.startsWith(`removed manifest ${repo}@`));
      assert.deepEqual(manifestsRemoved(run.stdout), [`removed manifest ${repo}@${loose.digest}`]);
      for (const m of [amd, arm, index, signed]) {
        assert.equal(await status(`${r.base}/v2/${repo}/manifests/${m.digest}`, { headers: { accept: ACCEPT } }), 200, m.digest);
      }
      for (const d of [...blobsOf(amd), ...blobsOf(arm), sigBlobDigest, emptyConfig]) {
        assert.equal(await status(`${r.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" }), 200, d);
      }
      const referrers = await fetch(`${r.base}/v2/${repo}/referrers/${index.digest}`);
      assert.deepEqual(((await referrers.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest), [signed.digest]);

      // untag the index: it goes, and its children and its signature with it
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/v1`, { method: "DELETE" }), 202);
      const second = await gc();
      assert.equal(second.code, 0, second.stderr);
      assert.deepEqual(
        manifestsRemoved(second.stdout),
        [amd, arm, index, signed].map((m) => `removed manifest ${repo}@${m.digest}`).sort(),
      );
      for (const d of [...blobsOf(amd), ...blobsOf(arm), sigBlobDigest, emptyConfig]) {
        assert.equal(await status(`${r.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" }), 404, d);
      }
      const after = await fetch(`${r.base}/v2/${repo}/referrers/${index.digest}`);
      assert.deepEqual(((await after.json()) as { manifests: unknown[] }).manifests, []);
      assert.ok(!(await catalog(r.base)).includes(repo));
    });

    it("scrub re-hashes every blob: a corrupt blob and a manifest whose blob is missing are listed, nothing changes, exit 1", async () => {
      const clean = await r.mf(["registry", "scrub", ...r.storageArgs]);
      assert.equal(clean.code, 0, clean.stdout + clean.stderr);
      assert.match(clean.stdout, /scrubbed \d+ blobs .*: no problems/);

      const repo = `${ns()}/scrub`;
      const bad = await pushImage(r.base, repo, "bad");
      const lost = await pushImage(r.base, repo, "lost");
      const [, badLayer] = blobsOf(bad);
      const [lostConfig] = blobsOf(lost);
      await r.corruptBlob(badLayer!);
      await r.loseBlob(lostConfig!);

      const run = await r.mf(["registry", "scrub", ...r.storageArgs]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      const lines = run.stdout.split("\n");
      assert.ok(lines.some((l) => l.startsWith(`corrupt blob ${badLayer} (`) && l.endsWith(`used by ${repo}@${bad.digest}`)), run.stdout);
      assert.ok(lines.includes(`missing blob ${lostConfig!} referenced by ${repo}@${lost.digest}`), run.stdout);
      assert.match(run.stdout, /: 2 problems/);

      // nothing was changed: the same answers again, and the registry still serves what it can
      const again = await r.mf(["registry", "scrub", ...r.storageArgs]);
      assert.equal(again.code, 1);
      assert.equal(again.stdout, run.stdout);
      assert.equal(await status(`${r.base}/v2/${repo}/manifests/lost`, { headers: { accept: ACCEPT } }), 200);
      assert.equal(await status(`${r.base}/v2/${repo}/blobs/${badLayer}`, { method: "HEAD" }), 200);
    });
  });
}
