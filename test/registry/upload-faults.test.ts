/**
 * The registry process SIGKILLed by itself (MF_FAULT) at each step of finishing an upload, on a directory
 * and on S3 (Ceph): data written, digest recorded, blob moved, repository link written, session removed.
 * The registry restarts on the same storage and `mf push` completes: the run that was in flight (its
 * retries reach the restarted registry through a holding proxy), or (on the directory; the client's side
 * does not depend on the storage), with the client killed too, the same command run again. Neither sends
 * the blob again, the cut session answers 404 BLOB_UPLOAD_UNKNOWN (never 500), no session is left and the
 * image reads back intact. Also: one long streamed PATCH (no Content-Length, as docker sends) killed
 * after an offset checkpoint resumes from that checkpoint.
 */
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalStore } from "../../core/store.js";
import { UploadSessions } from "../../registry/client/index.js";
import { UPLOAD_FAULT_POINTS } from "../../registry/server/upload-sessions.js";
import { MF_BIN, ROOT, type MfResult } from "../helpers/mf.js";
import { buildModel } from "./client/helpers.js";
import { startHoldingProxy } from "./hold-proxy.js";
import { expectError, pushBlob, rebase, sha256, startUpload, uploadRange, withQuery } from "./oci-client.js";
import { spawnMfRegistry, tempDir, type SpawnedRegistry } from "./peers.js";
import { S3_MISSING, s3Driver } from "./s3-peer.js";
import { DIST_CLI, replicaSet, type ReplicaSet } from "./s3-replicas.js";

const MiB = 1024 * 1024;
const FINISH_POINTS = UPLOAD_FAULT_POINTS.filter((p) => p.startsWith("upload-finish:"));

interface Backend {
  label: string;
  /** the smallest chunk a client sends, and the size of the blob pushed through the crash */
  chunk: string;
  bigBytes: number;
  /** flags that make a streamed PATCH checkpoint early, and the offset its first checkpoint reaches */
  checkpointFlags: string[];
  firstCheckpoint: number;
  start(fault?: string, extra?: string[]): Promise<SpawnedRegistry>;
  /** the upload sessions left in storage */
  sessions(): Promise<string[]>;
  close(): Promise<void>;
}

const dirs: string[] = [];
const children = new Set<ChildProcess>();
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function track(r: SpawnedRegistry): SpawnedRegistry {
  children.add(r.child);
  void r.exited.then(() => children.delete(r.child));
  return r;
}

async function fsBackend(): Promise<Backend> {
  const root = await tempDir("mf-upload-faults-");
  dirs.push(root);
  return {
    label: "directory",
    chunk: "1M",
    bigBytes: 3 * MiB + 77,
    checkpointFlags: ["--upload-checkpoint", "1MiB"],
    firstCheckpoint: 1 * MiB,
    start: async (fault, extra = []) => track(await spawnMfRegistry(root, extra, 30_000, { entry: DIST_CLI, env: fault ? { MF_FAULT: fault } : {} })),
    sessions: async () => readdir(join(root, "uploads")).catch(() => []),
    close: async () => {},
  };
}

async function s3Backend(): Promise<Backend> {
  const set: ReplicaSet = await replicaSet("upload-faults");
  const driver = s3Driver(set.prefix);
  return {
    label: "S3",
    chunk: "5M",
    bigBytes: 7 * MiB + 77,
    // the offset can only advance where a part ends: the first checkpoint is the first 5 MiB part
    checkpointFlags: ["--upload-checkpoint", "1MiB", "--s3-part-size", "5MiB"],
    firstCheckpoint: 5 * MiB,
    start: async (fault, extra = []) => track(await set.start(extra, fault ? { MF_FAULT: fault } : {})),
    sessions: () => driver.list("uploads"),
    close: async () => {
      driver.close();
      await set.close();
    },
  };
}

/** `mf ARGS` (the built binary) as a process the test may kill. */
function spawnMf(args: string[], env: Record<string, string>): { proc: ChildProcess; done: Promise<MfResult> } {
  const full: Record<string, string | undefined> = { ...process.env, ...env };
  delete full.MF_DEBUG;
  delete full.MF_KEY;
  const proc = spawn(process.execPath, [MF_BIN, ...args], { cwd: ROOT, env: full, stdio: ["ignore", "pipe", "pipe"] });
  children.add(proc);
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d: Buffer) => (stdout += d));
  proc.stderr!.on("data", (d: Buffer) => (stderr += d));
  const done = new Promise<MfResult>((r) => proc.on("close", (code) => {
    children.delete(proc);
    r({ code, stdout, stderr });
  }));
  return { proc, done };
}

function portOf(base: string): number {
  return Number(new URL(base).port);
}

/** One PATCH with a chunked body (no Content-Length), written as fast as the server takes it. */
function streamedPatch(location: string, body: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const req = request(location, { method: "PATCH", headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" } });
    req.on("error", (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.on("response", (r) => {
      r.resume();
      resolve(`status ${r.statusCode}`);
    });
    let at = 0;
    const next = () => {
      while (at < body.length) {
        const piece = body.subarray(at, at + 256 * 1024);
        at += piece.length;
        if (!req.write(piece)) return void req.once("drain", next);
      }
      req.end();
    };
    next();
  });
}

/**
 * Pushes a model whose one missing blob is `bigBytes` through a registry that kills itself at `point`;
 * `rerun`: the client is killed too and the same command runs again, else the run in flight completes.
 */
async function pushThroughCrash(b: Backend, seeder: SpawnedRegistry, point: string, rerun: boolean): Promise<void> {
  const dir = await tempDir("mf-upload-faults-client-");
  dirs.push(dir);
  const home = { MF_MODELS: join(dir, "models"), MF_HOME: join(dir, "home") };
  const proxy = await startHoldingProxy();
  let second: SpawnedRegistry | undefined;
  try {
    const first = await b.start(point);
    proxy.setTarget(portOf(first.base));
    const repo = `faults/${point.slice("upload-finish:".length)}-${rerun ? "rerun" : "inflight"}`;
    const name = `${proxy.host}/${repo}:v1`;
    const store = new LocalStore(home.MF_MODELS);
    await buildModel(store, dir, name, { bigLayerBytes: b.bigBytes, seed: 11 });
    const model = await store.readModel(name);
    const blobs = [...model.manifest.layers, model.manifest.config];
    const big = blobs.reduce((x, y) => (y.size > x.size ? y : x));
    // every other blob is there already (pushed through a registry without faults on the same storage), so
    // the kill hits the finish of the big one
    for (const d of blobs) if (d.digest !== big.digest) await pushBlob(seeder.base, repo, await readFile(store.blobPath(d.digest)));

    const push = spawnMf(["push", "--insecure", "--chunk-size", b.chunk, name], home);
    assert.equal(await first.exited, "SIGKILL", first.output());
    proxy.setTarget(undefined);
    assert.match(first.output(), new RegExp(`MF_FAULT ${point}`));
    const saved = (await new UploadSessions(store.root).list()).find((s) => s.digest === big.digest);
    assert.ok(saved, "the client kept the session's location");
    if (rerun) {
      push.proc.kill("SIGKILL");
      await push.done;
    }

    second = await b.start();
    proxy.reset();
    proxy.setTarget(portOf(second.base));
    const result = rerun ? await spawnMf(["push", "--insecure", "--chunk-size", b.chunk, name], home).done : await push.done;
    assert.equal(result.code, 0, `${point}${rerun ? " (run again)" : ""}: ${result.stderr}\nregistry: ${second.output()}`);
    assert.match(result.stderr, /pushed .*\d+ uploaded/);
    assert.ok(proxy.sent < big.size / 4, `the blob was not sent again (${proxy.sent} bytes of requests after the restart)`);
    await expectError(await fetch(saved.location), 404, "BLOB_UPLOAD_UNKNOWN");
    assert.deepEqual(await b.sessions(), [], "no upload session is left");
    const manifest = await fetch(`${proxy.base}/v2/${repo}/manifests/v1`, { headers: { accept: model.manifest.mediaType } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get("docker-content-digest"), model.digest);
    await manifest.arrayBuffer();
    const got = await fetch(`${proxy.base}/v2/${repo}/blobs/${big.digest}`);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), big.digest);
  } finally {
    if (second) {
      second.child.kill("SIGTERM");
      await second.exited;
    }
    await proxy.close();
  }
}

async function streamedPatchThroughCrash(b: Backend): Promise<void> {
  const first = await b.start("upload-append:after-checkpoint", b.checkpointFlags);
  const blob = randomBytes(b.firstCheckpoint + 6 * MiB + 123);
  const repo = "faults/streamed";
  const loc = await startUpload(first.base, repo);
  const answer = await streamedPatch(loc, blob);
  assert.match(answer, /^error /, `the registry died before answering the PATCH: ${answer}`);
  assert.equal(await first.exited, "SIGKILL", first.output());

  const second = await b.start();
  try {
    const at = rebase(loc, second.base);
    const offset = await uploadRange(at);
    assert.ok(offset >= b.firstCheckpoint && offset < blob.length, `resumes at ${offset}, at or past the checkpoint at ${b.firstCheckpoint}`);
    if (b.label === "S3") assert.equal(offset % b.firstCheckpoint, 0, "on S3 the offset advances where a part ends");
    const rest = await fetch(at, { method: "PATCH", body: blob.subarray(offset), headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${blob.length - 1}` } });
    assert.equal(rest.status, 202, await rest.text());
    const put = await fetch(withQuery(at, `digest=${sha256(blob)}`), { method: "PUT" });
    assert.equal(put.status, 201, await put.text());
    const got = await fetch(`${second.base}/v2/${repo}/blobs/${sha256(blob)}`);
    assert.equal(sha256(Buffer.from(await got.arrayBuffer())), sha256(blob));
  } finally {
    second.child.kill("SIGTERM");
    await second.exited;
  }
}

for (const [label, make, skip] of [["directory", fsBackend, undefined], ["S3", s3Backend, S3_MISSING]] as const) {
  describe(`registry killed while finishing uploads, on ${label}`, { skip }, () => {
    let b: Backend;
    let seeder: SpawnedRegistry;
    before(async () => {
      b = await make();
      seeder = await b.start();
    });
    after(async () => {
      seeder?.child.kill("SIGTERM");
      await seeder?.exited;
      await b?.close();
    });

    for (const point of FINISH_POINTS) {
      it(`${point}: the registry restarts and the mf push in flight completes, sending nothing again`, async () => {
        await pushThroughCrash(b, seeder, point, false);
      });
      // the client's side of a run again (its saved location, HEAD first) does not depend on the storage
      if (label === "directory") {
        it(`${point}: the client killed too, mf push run again completes, sending nothing again`, async () => {
          await pushThroughCrash(b, seeder, point, true);
        });
      }
    }

    it("a streamed PATCH killed after an offset checkpoint: restarted, GET says at least the checkpoint, the rest completes the blob", async () => {
      await streamedPatchThroughCrash(b);
    });
  });
}
