/** Garbage collection: mark from all manifests, sweep old unreferenced blobs, safe against a concurrent push. */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { collectGarbage } from "../../registry/server/gc.js";
import { scrub, describeProblem } from "../../registry/server/scrub.js";
import { FsDriver } from "../../registry/server/storage/fs.js";
import type { StorageDriver } from "../../registry/server/storage/driver.js";
import { pushBlob, pushImage, randomRepo, sha256, startUpload, type PushedManifest } from "./oci-client.js";
import { startInProcess, tempDir, type InProcessRegistry } from "./peers.js";

const servers: InProcessRegistry[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function blobFile(root: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(root, "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

async function age(root: string, digest: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  await utimes(blobFile(root, digest), t, t);
}

/** Every file of the store (blobs, revisions, links, tags) last touched `ms` ago, as after a quiet while. */
async function ageAll(root: string, ms: number): Promise<void> {
  const t = new Date(Date.now() - ms);
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir).catch(() => [])) {
      const p = join(dir, name);
      if ((await stat(p)).isDirectory()) await walk(p);
      else await utimes(p, t, t);
    }
  };
  for (const top of ["blobs", "repositories"]) await walk(join(root, top));
}

function layersOf(m: PushedManifest): string[] {
  const parsed = JSON.parse(m.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  return [parsed.config.digest, ...parsed.layers.map((l) => l.digest)];
}

async function put(base: string, repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<Response> {
  return fetch(`${base}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
}

/** The driver, with `hook` run once just before (or after) the first delete of `path` (or of a path under it). */
function onDelete(fs: FsDriver, path: string, hook: () => Promise<void>, when: "before" | "after" = "before"): StorageDriver & { fired: () => boolean } {
  let fired = false;
  return Object.assign(Object.create(fs) as StorageDriver, {
    async delete(p: string) {
      const run = (p === path || p.startsWith(`${path}/`)) && !fired;
      if (run) fired = true;
      if (run && when === "before") await hook();
      await fs.delete(p);
      if (run && when === "after") await hook();
    },
    fired: () => fired,
  });
}

const revisionPath = (repo: string, digest: string) => `repositories/${repo}/_manifests/revisions/sha256/${digest.slice(7)}`;

describe("registry gc", () => {
  it("sweeps old unreferenced blobs, keeps referenced and young ones and open uploads", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gc");
    const image = await pushImage(s.base, repo, "keep");
    const manifest = JSON.parse(image.bytes.toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const orphanOld = await pushBlob(s.base, repo, randomBytes(3000));
    const orphanYoung = await pushBlob(s.base, repo, randomBytes(3000));
    const open = await startUpload(s.base, repo);
    const patch = await fetch(open, { method: "PATCH", body: randomBytes(100), headers: { "content-type": "application/octet-stream" } });
    assert.equal(patch.status, 202);
    for (const d of [orphanOld, manifest.config.digest, manifest.layers[0]!.digest, image.digest]) await age(s.root, d, 2 * 3600_000);

    const dry = await collectGarbage({ storage: new FsDriver({ root: s.root }), graceMs: 3600_000, dryRun: true });
    assert.equal(dry.sweptBlobs, 1);
    assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${orphanOld}`, { method: "HEAD" })).status, 200, "dry run deletes nothing");

    const swept: string[] = [];
    const report = await collectGarbage({ storage: new FsDriver({ root: s.root }), graceMs: 3600_000, onSweep: (d) => swept.push(d) });
    assert.deepEqual(swept, [orphanOld]);
    assert.equal(report.sweptBytes, 3000);
    assert.equal(report.keptYoung, 1);
    assert.equal(report.manifests, 1);
    assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${orphanOld}`, { method: "HEAD" })).status, 404);
    for (const d of [orphanYoung, manifest.config.digest, manifest.layers[0]!.digest]) {
      assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
    }
    const m = await fetch(`${s.base}/v2/${repo}/manifests/keep`);
    assert.equal(sha256(Buffer.from(await m.arrayBuffer())), image.digest);
    assert.equal((await fetch(open)).status, 204, "the open upload survives");
  });

  it("a manifest pushed while GC runs keeps its old blobs (touched after marking began)", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gcrace");
    const config = Buffer.from("{}");
    const layer = randomBytes(5000);
    const cd = await pushBlob(s.base, repo, config);
    const ld = await pushBlob(s.base, repo, layer);
    await age(s.root, cd, 2 * 3600_000);
    await age(s.root, ld, 2 * 3600_000);
    const fs = new FsDriver({ root: s.root });
    let pushed = false;
    // Between mark and sweep (the first listing of blobs/), a client pushes a manifest using both blobs.
    const racing: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, {
      async list(prefix: string) {
        if (prefix === "blobs" && !pushed) {
          pushed = true;
          const body = JSON.stringify({
            schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
            config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
            layers: [{ mediaType: "application/vnd.example.model", digest: ld, size: layer.length }],
          });
          const res = await fetch(`${s.base}/v2/${repo}/manifests/late`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } });
          assert.equal(res.status, 201);
        }
        return fs.list(prefix);
      },
    });
    const report = await collectGarbage({ storage: racing, graceMs: 3600_000 });
    assert.ok(pushed);
    assert.equal(report.sweptBlobs, 0);
    assert.equal(report.keptYoung, 3, "both blobs and the new manifest were touched or written after marking began");
    for (const d of [cd, ld]) assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200);
  });

  it("an untagged manifest pushed again while gc removes it is put back (the push touched it after gc's check)", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gcrepush");
    const image = await pushImage(s.base, repo, "v1");
    assert.equal((await fetch(`${s.base}/v2/${repo}/manifests/v1`, { method: "DELETE" })).status, 202);
    await ageAll(s.root, 2 * 3600_000);
    const fs = new FsDriver({ root: s.root });
    // the push lands between gc's last check and its delete of the revision
    const racing = onDelete(fs, revisionPath(repo, image.digest), async () => {
      assert.equal((await put(s.base, repo, "again", image.bytes, image.mediaType)).status, 201);
    });
    const report = await collectGarbage({ storage: racing, graceMs: 3600_000 });
    assert.ok(racing.fired());
    assert.equal(report.manifestsRemoved, 0);
    assert.equal(report.sweptBlobs, 0);
    const got = await fetch(`${s.base}/v2/${repo}/manifests/again`, { headers: { accept: image.mediaType } });
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), image.bytes);
    for (const d of layersOf(image)) assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
  });

  it("an index pushed while gc removes its old untagged child: kept when the push came first, refused (400) when gc did", async () => {
    for (const when of ["before", "after"] as const) {
      const s = await startInProcess();
      servers.push(s);
      const repo = randomRepo("gcindex");
      const child = await pushImage(s.base, repo, "child");
      assert.equal((await fetch(`${s.base}/v2/${repo}/manifests/child`, { method: "DELETE" })).status, 202);
      await ageAll(s.root, 2 * 3600_000);
      const index = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ mediaType: child.mediaType, digest: child.digest, size: child.bytes.length }],
      }));
      let status = 0;
      const racing = onDelete(new FsDriver({ root: s.root }), revisionPath(repo, child.digest), async () => {
        const res = await put(s.base, repo, "v1", index, "application/vnd.oci.image.index.v1+json");
        status = res.status;
        await res.arrayBuffer();
      }, when);
      const report = await collectGarbage({ storage: racing, graceMs: 3600_000 });
      assert.ok(racing.fired());
      if (when === "before") {
        assert.equal(status, 201);
        assert.equal(report.manifestsRemoved, 0, "the child is put back");
        const got = await fetch(`${s.base}/v2/${repo}/manifests/${child.digest}`, { headers: { accept: child.mediaType } });
        assert.equal(got.status, 200);
        await got.arrayBuffer();
        for (const d of layersOf(child)) assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
      } else {
        assert.equal(status, 400, "the push sees the child gone and says so; no index names a missing manifest");
        assert.equal(report.manifestsRemoved, 1);
        assert.equal((await fetch(`${s.base}/v2/${repo}/manifests/v1`, { method: "HEAD" })).status, 404);
      }
    }
  });

  it("a manifest reusing a blob whose old link gc removes at that moment keeps the link", async () => {
    const s = await startInProcess();
    servers.push(s);
    const keeper = randomRepo("gckeep");
    const repo = randomRepo("gclink");
    const image = await pushImage(s.base, keeper, "v1");
    const [config, layer] = layersOf(image);
    // repo got the same blobs long ago; the manifest that used them there is gone
    const mount = async (d: string) => {
      const res = await fetch(`${s.base}/v2/${repo}/blobs/uploads/?mount=${d}&from=${keeper}`, { method: "POST" });
      assert.equal(res.status, 201);
    };
    await mount(config!);
    await mount(layer!);
    await ageAll(s.root, 2 * 3600_000);
    // (whichever of the two links gc comes to first)
    const racing = onDelete(new FsDriver({ root: s.root }), `repositories/${repo}/_layers`, async () => {
      assert.equal((await put(s.base, repo, "reuse", image.bytes, image.mediaType)).status, 201);
    });
    const report = await collectGarbage({ storage: racing, graceMs: 3600_000 });
    assert.ok(racing.fired());
    for (const d of [config!, layer!]) assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/${d}`, { method: "HEAD" })).status, 200, d);
    assert.equal(report.linksRemoved, 0, "the other link is kept too: the new manifest uses it");
  });

  it("a push that checked its child manifest or blob link before gc removed it, and touched it after gc's last look, is refused (400)", async () => {
    for (const what of ["child", "link"] as const) {
      const root = await tempDir("mf-gc-claim-");
      const fs = new FsDriver({ root });
      let gcRun: Promise<unknown> | undefined;
      let armed = "";
      // the registry's own driver: when the PUT touches the armed blob, a whole gc runs first
      const serverSide: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, {
        async touch(p: string) {
          if (armed && p === armed) {
            armed = "";
            gcRun = collectGarbage({ storage: new FsDriver({ root }), graceMs: 3600_000 });
            await gcRun;
          }
          return fs.touch(p);
        },
      });
      const s = await startInProcess({ storage: serverSide }, root);
      servers.push(s);
      dirs.push(root);
      const repo = randomRepo("gcclaim");
      const keeper = randomRepo("gckeeper");
      // the blobs stay in use by another repository, so only the link or the child's revision can go
      const image = await pushImage(s.base, keeper, "v1");
      for (const d of layersOf(image)) {
        assert.equal((await fetch(`${s.base}/v2/${repo}/blobs/uploads/?mount=${d}&from=${keeper}`, { method: "POST" })).status, 201);
      }
      let body: Buffer;
      let mediaType: string;
      if (what === "child") {
        assert.equal((await put(s.base, repo, "child", image.bytes, image.mediaType)).status, 201);
        assert.equal((await fetch(`${s.base}/v2/${repo}/manifests/child`, { method: "DELETE" })).status, 202);
        body = Buffer.from(JSON.stringify({
          schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
          manifests: [{ mediaType: image.mediaType, digest: image.digest, size: image.bytes.length }],
        }));
        mediaType = "application/vnd.oci.image.index.v1+json";
        armed = `blobs/sha256/${image.digest.slice(7, 9)}/${image.digest.slice(7)}/data`;
      } else {
        body = image.bytes;
        mediaType = image.mediaType;
        const layer = layersOf(image)[1]!;
        armed = `blobs/sha256/${layer.slice(7, 9)}/${layer.slice(7)}/data`;
      }
      await ageAll(root, 2 * 3600_000);
      const res = await put(s.base, repo, "new", body, mediaType);
      assert.ok(gcRun, `${what}: gc ran inside the push`);
      assert.equal(res.status, 400, `${what}: ${await res.text()}`);
      assert.equal((await fetch(`${s.base}/v2/${repo}/manifests/new`, { method: "HEAD" })).status, 404, `${what}: nothing names what is gone`);
    }
  });

  it("a store written before temporary files moved to .mf/tmp: gc removes the leftovers that cannot be names, scrub reports leftover tags", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("gcleft");
    const subject = await pushImage(s.base, repo, "v1");
    const sig = await pushImage(s.base, repo, "sig", { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length } });
    const dir = join(s.root, "repositories", repo);
    const hex = subject.digest.slice(7);
    const leftovers = [
      join(dir, "_manifests", "revisions", "sha256", `${hex}.tmp-0123456789ab`),
      join(dir, "_layers", "sha256", `${layersOf(subject)[1]!.slice(7)}.tmp-0123456789ab`),
      join(dir, "_referrers", "sha256", hex, `sha256-${sig.digest.slice(7)}.tmp-0123456789ab`),
    ];
    for (const f of leftovers) await writeFile(f, '{"mediaType":"appl');
    await mkdir(join(dir, "_manifests", "tags"), { recursive: true });
    await writeFile(join(dir, "_manifests", "tags", "v1.tmp-0123456789ab"), "sha256:12");
    const old = new Date(Date.now() - 2 * 3600_000);
    for (const f of leftovers) await utimes(f, old, old);

    const referrers = await fetch(`${s.base}/v2/${repo}/referrers/${subject.digest}`);
    assert.equal(referrers.status, 200, "a half-written leftover is no referrer");
    assert.deepEqual(((await referrers.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest), [sig.digest]);

    const report = await collectGarbage({ storage: new FsDriver({ root: s.root }), graceMs: 3600_000 });
    assert.equal(report.leftoversRemoved, 3);
    assert.equal(report.manifestsRemoved, 0);
    for (const f of leftovers) await assert.rejects(stat(f), /ENOENT/);

    const tags = await fetch(`${s.base}/v2/${repo}/tags/list`);
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ["sig", "v1", "v1.tmp-0123456789ab"]);
    const found = await scrub({ storage: new FsDriver({ root: s.root }) });
    assert.deepEqual(found.problems.map(describeProblem), [`tag ${repo}:v1.tmp-0123456789ab holds no digest`]);
  });
});
