import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, writeFile, utimes, stat, readFile } from "node:fs/promises";
import { utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { LocalStore, TEMP_PREFIX } from "../../core/store.js";
import { digestOf } from "../../core/digest.js";
import { MediaType } from "../../core/mediatypes.js";
import { displayRef, parseRef } from "../../core/reference.js";
import { serializeManifest } from "../../core/manifest.js";

async function withStore(fn: (s: LocalStore, dir: string) => Promise<void>, now?: () => number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "mf-store-"));
  try {
    await fn(new LocalStore(join(dir, "models"), { now }), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function manifestFor(s: LocalStore, ...texts: string[]): Promise<Buffer> {
  const cfg = await s.writeBlob("{}");
  const layers = [];
  for (const t of texts) {
    const w = await s.writeBlob(t);
    layers.push({ mediaType: MediaType.system, digest: w.digest, size: w.size });
  }
  return serializeManifest({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: cfg.digest, size: cfg.size }, layers });
}

test("blobs land under Ollama's names and are written once", async () => {
  await withStore(async (s) => {
    const a = await s.writeBlob("hello");
    assert.equal(a.digest, digestOf("hello"));
    assert.equal(a.created, true);
    assert.equal((await s.writeBlob("hello")).created, false);
    assert.deepEqual(await readdir(s.blobsDir), [`sha256-${a.digest.slice(7)}`]);
    assert.equal((await s.readBlob(a.digest)).toString(), "hello");
  });
});

test("a streamed blob with the wrong expected digest stores nothing", async () => {
  await withStore(async (s) => {
    await assert.rejects(
      s.writeBlobStream(Readable.from([Buffer.from("abc")]), { expected: digestOf("xyz") }),
      (e: Error & { code?: string }) => e.code === "DIGEST_INVALID",
    );
    assert.deepEqual(await readdir(s.blobsDir), []);
  });
});

test("digests are validated before they touch a path", async () => {
  await withStore(async (s) => {
    for (const bad of ["sha256:../../etc/passwd", "sha256:ABC", "md5:00", `sha256:${"a".repeat(63)}`]) {
      assert.throws(() => s.blobPath(bad), (e: Error & { code?: string }) => e.code === "DIGEST_INVALID", bad);
    }
  });
});

test("concurrent writers of the same blob and tag leave one complete copy", async () => {
  await withStore(async (s) => {
    const big = Buffer.alloc(3 << 20, 7);
    const results = await Promise.all(Array.from({ length: 12 }, () => s.writeBlobStream(Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]))));
    assert.equal(new Set(results.map((r) => r.digest)).size, 1);
    const names = await readdir(s.blobsDir);
    assert.deepEqual(names, [`sha256-${results[0]!.digest.slice(7)}`], "no temp file left behind");
    assert.equal((await stat(s.blobPath(results[0]!.digest))).size, big.length);

    const manifests = await Promise.all(Array.from({ length: 6 }, (_, i) => manifestFor(s, `layer ${i}`)));
    await Promise.all(manifests.map((m) => s.writeManifest(parseRef("team/m:v1"), m)));
    const stored = await s.readModel("team/m:v1");
    assert.ok(manifests.some((m) => m.equals(stored.bytes)), "the tag holds one writer's complete manifest");
    assert.deepEqual((await readdir(join(s.manifestsDir, "registry.ollama.ai", "team", "m"))), ["v1"]);
  });
});

test("names are matched case-insensitively and keep their first spelling", async () => {
  await withStore(async (s) => {
    const m = await manifestFor(s, "x");
    await s.writeManifest(parseRef("Team/Mario:V1"), m);
    const again = await s.writeManifest(parseRef("team/mario:v1"), m);
    assert.equal(again.ref.namespace, "Team");
    assert.equal((await s.readModel("TEAM/MARIO:v1")).ref.model, "Mario");
    assert.equal((await s.listModels()).length, 1);
  });
});

test("a manifest whose blobs are missing is refused", async () => {
  await withStore(async (s) => {
    const bytes = serializeManifest({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { mediaType: MediaType.dockerConfig, digest: digestOf("nope"), size: 4 }, layers: [] });
    await assert.rejects(s.writeManifest(parseRef("m"), bytes), (e: Error & { code?: string }) => e.code === "MANIFEST_BLOB_UNKNOWN");
  });
});

test("deleting a model removes the blobs no other model uses", async () => {
  await withStore(async (s) => {
    await s.writeManifest(parseRef("a"), await manifestFor(s, "shared", "only-a"));
    await s.writeManifest(parseRef("b"), await manifestFor(s, "shared"));
    const r = await s.deleteModel("a");
    assert.deepEqual(r.removedBlobs, [digestOf("only-a")]);
    assert.equal(await s.hasBlob(digestOf("shared")), true);
    assert.equal(await s.hasBlob(digestOf("{}")), true);
    await s.deleteModel("b");
    assert.deepEqual(await readdir(s.blobsDir), []);
    assert.deepEqual(await readdir(s.manifestsDir), [], "empty name directories are removed");
    await assert.rejects(s.deleteModel("b"), (e: Error & { code?: string; status?: number }) => e.code === "MODEL_NOT_FOUND" && e.status === 404);
  });
});

test("copy makes a second name for the same bytes", async () => {
  await withStore(async (s) => {
    await s.writeManifest(parseRef("a"), await manifestFor(s, "x"));
    await s.copyModel("a", "ns/b:2");
    const [a, b] = [await s.readModel("a"), await s.readModel("ns/b:2")];
    assert.equal(a.digest, b.digest);
  });
});

test("prune removes old temp files, old partials and old unreferenced blobs only", async () => {
  let now = Date.now();
  await withStore(async (s) => {
    await s.writeManifest(parseRef("keep"), await manifestFor(s, "kept"));
    const orphan = await s.writeBlob("orphan");
    const fresh = await s.writeBlob("fresh orphan");
    const tmpOld = join(s.blobsDir, `${TEMP_PREFIX}old`);
    const tmpNew = join(s.blobsDir, `${TEMP_PREFIX}new`);
    const partial = s.partialPath(digestOf("downloading"));
    for (const p of [tmpOld, tmpNew, partial]) await writeFile(p, "x");
    const hoursAgo = (h: number) => new Date(now - h * 3600_000);
    await utimes(tmpOld, hoursAgo(2), hoursAgo(2));
    await utimes(partial, hoursAgo(2), hoursAgo(2));
    await utimes(s.blobPath(orphan.digest), hoursAgo(2), hoursAgo(2));
    for (const l of (await s.readModel("keep")).manifest.layers) await utimes(s.blobPath(l.digest), hoursAgo(5), hoursAgo(5));
    const r = await s.prune();
    assert.deepEqual(r.removedTemp, [`${TEMP_PREFIX}old`]);
    assert.deepEqual(r.removedBlobs, [orphan.digest]);
    assert.equal(await s.hasBlob(fresh.digest), true, "a blob younger than the grace period stays");
    assert.equal((await readFile(partial)).toString(), "x", "resumable state is kept for 24 hours");
    now += 25 * 3600_000;
    const later = await s.prune();
    assert.ok(later.removedTemp.some((n) => n.endsWith("-mf-partial")));
    assert.equal((await s.readModel("keep")).manifest.layers.length, 1);
  }, () => now);
});

test("importFile copies and hashes in one pass; --link shares the inode", async () => {
  await withStore(async (s, dir) => {
    const src = join(dir, "w.bin");
    const data = Buffer.alloc(5 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    await writeFile(src, data);
    const seen: number[] = [];
    const r = await s.importFile(src, { onProgress: (c) => seen.push(c) });
    assert.equal(r.digest, digestOf(data));
    assert.equal(seen.at(-1), data.length);
    assert.notEqual((await stat(s.blobPath(r.digest))).ino, (await stat(src)).ino);
    await s.removeBlob(r.digest);
    const l = await s.importFile(src, { link: true });
    assert.equal((await stat(s.blobPath(l.digest))).ino, (await stat(src)).ino);
  });
});

test("an Ollama models directory works as a store, and mf never touches Ollama's -partial files", async () => {
  await withStore(async (s) => {
    // laid out by hand as Ollama writes it
    const blobs = s.blobsDir;
    const dir = join(s.manifestsDir, "registry.ollama.ai", "library", "llama3");
    await mkdir(dir, { recursive: true });
    await mkdir(blobs, { recursive: true });
    const put = async (text: string) => {
      await writeFile(join(blobs, `sha256-${digestOf(text).slice(7)}`), text);
      return { digest: digestOf(text), size: Buffer.byteLength(text) };
    };
    const config = await put('{"model_format":"gguf","model_family":"llama"}');
    const weights = await put("GGUF weights");
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, ...config },
      layers: [{ mediaType: MediaType.model, ...weights }],
    });
    await writeFile(join(dir, "latest"), manifest);
    const downloading = `sha256-${digestOf("downloading").slice(7)}`;
    const ollamaPartials = [`${downloading}-partial`, `${downloading}-partial-0`];
    for (const p of ollamaPartials) await writeFile(join(blobs, p), "x");

    const [listed] = await s.listModels();
    assert.equal(displayRef(listed!.ref), "llama3:latest");
    const m = await s.readModel("llama3");
    assert.equal(m.digest, digestOf(manifest));
    assert.equal(m.bytes.toString(), manifest, "manifest bytes are read as stored");
    assert.equal(await s.hasBlob(digestOf("downloading")), false, "a partial download is not a blob");

    const years = new Date(Date.now() - 3 * 365 * 24 * 3600_000);
    for (const n of await readdir(blobs)) await utimes(join(blobs, n), years, years);
    assert.deepEqual(await s.prune(), { removedTemp: [], removedBlobs: [], freedBytes: 0 });
    await s.deleteModel("llama3");
    assert.deepEqual((await readdir(blobs)).sort(), ollamaPartials.sort());
  });
});

test("a source edited while it is imported is refused, and nothing is stored", async () => {
  await withStore(async (s, dir) => {
    const src = join(dir, "w.bin");
    await writeFile(src, Buffer.alloc(3 << 20, 1));
    let edited = false;
    const edit = () => {
      if (edited) return;
      edited = true;
      writeFileSync(src, Buffer.alloc(3 << 20, 2));
      const later = new Date(Date.now() + 60_000);
      utimesSync(src, later, later);
    };
    await assert.rejects(s.importFile(src, { onProgress: edit }), (e: Error & { code?: string }) => e.code === "BUILD_FAILED" && /changed while it was being imported/.test(e.message));
    assert.ok(edited);
    assert.deepEqual(await readdir(s.blobsDir), [], "no blob and no temp file");
  });
});
