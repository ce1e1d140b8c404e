/**
 * `mf registry serve --audit-log FILE`, through the binary: a push with an API key (mf login + mf push),
 * deletes (mf registry rm, a blob DELETE), and refusals (anonymous push, an unknown API key, a key beyond
 * its rights, at /v2/ and at the token endpoint) each leave one JSON line with who, action, repository,
 * reference, digest and status; no key, token or signature ever appears in the file; a renamed log
 * (rotation) is followed by a new file at the path. On S3 (when set), an open registry's push and tag
 * delete, by `anonymous`.
 */
import { strict as assert } from "node:assert";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalStore } from "../../core/store.js";
import type { AuditEvent } from "../../registry/server/audit.js";
import { buildModel } from "./client/helpers.js";
import { pushImage } from "./oci-client.js";
import { freePort, spawnMfRegistry, tempDir, type SpawnedRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";
import { S3_MISSING } from "./s3-peer.js";
import { replicaSet } from "./s3-replicas.js";

async function auditLines(path: string): Promise<AuditEvent[]> {
  return (await readFile(path, "utf8")).split("\n").filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
}

/** The log's lines once `n` of them match (the sink writes after the answer). */
async function waitForLines(path: string, pred: (e: AuditEvent) => boolean, n = 1): Promise<AuditEvent[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const all = await auditLines(path).catch(() => []);
    const found = all.filter(pred);
    if (found.length >= n) return found;
    if (Date.now() > deadline) throw new Error(`the audit log never got the line looked for:\n${JSON.stringify(all, null, 1)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("mf registry serve --audit-log", () => {
  let dir: string;
  let reg: SpawnedRegistry;
  let host: string;
  let logPath: string;
  let accessPath: string;
  const keys: Record<string, string> = {};
  const homes: Record<string, Record<string, string>> = {};

  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
  const lines = (path = logPath) => auditLines(path);
  const waitFor = (pred: (e: AuditEvent) => boolean, n = 1, path = logPath) => waitForLines(path, pred, n);

  before(async () => {
    dir = await tempDir("mf-audit-");
    accessPath = join(dir, "access.yaml");
    logPath = join(dir, "logs", "audit.jsonl");
    await mkdir(join(dir, "logs"));
    await writeFile(accessPath, 'anonymous:\n  "public/*": [pull]\n');
    for (const [id, allow] of [["ci", "team/*=pull,push,delete"], ["reader", "team/*=pull"]] as const) {
      const add = await runMf(["registry", "key", "add", id, "--access", accessPath, "--allow", allow]);
      assert.equal(add.code, 0, add.stderr);
      keys[id] = add.stdout.trim();
      homes[id] = { MF_HOME: join(dir, id), MF_MODELS: join(dir, id, "models") };
    }
    homes.nobody = { MF_HOME: join(dir, "nobody"), MF_MODELS: join(dir, "ci", "models") };
    const port = await freePort();
    reg = await spawnMfRegistry(join(dir, "registry"), [
      "--access", accessPath, "--addr", `127.0.0.1:${port}`, "--public-url", `http://127.0.0.1:${port}`, "--audit-log", logPath,
    ]);
    host = new URL(reg.base).host;
    for (const id of ["ci", "reader"]) {
      const login = await runMf(["login", host, "--insecure"], homes[id], `${keys[id]}\n`);
      assert.equal(login.code, 0, login.stderr);
    }
  });
  after(async () => {
    reg?.child.kill("SIGTERM");
    if (reg) await reg.exited;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a push, its deletes and the refusals are one line each, with who, what and where; no secret appears", async () => {
    const name = `${host}/team/model:latest`;
    const built = await buildModel(new LocalStore(homes.ci!.MF_MODELS!), dir, name);
    const push = await runMf(["push", name, "--insecure", "-q"], homes.ci);
    assert.equal(push.code, 0, push.stderr);

    const [pushed] = await waitFor((e) => e.action === "push");
    assert.deepEqual(
      { who: pushed!.who, repository: pushed!.repository, reference: pushed!.reference, digest: pushed!.digest, status: pushed!.status },
      { who: "apikey:ci", repository: "team/model", reference: "latest", digest: built.digest, status: 201 },
    );
    assert.ok(!Number.isNaN(Date.parse(pushed!.time)) && pushed!.time.endsWith("Z"), pushed!.time);
    assert.equal(pushed!.address, "127.0.0.1");
    const got = await fetch(`${reg.base}/v2/team/model/manifests/${built.digest}`, { headers: { authorization: basic("ci", keys.ci!), accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" } });
    assert.equal(got.status, 200);
    const manifest = (await got.json()) as { config: { digest: string }; layers: { digest: string }[] };
    const blobs = [manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    const blobLines = await waitFor((e) => e.action === "push-blob", blobs.length);
    assert.deepEqual(blobLines.map((e) => e.digest).sort(), [...blobs].sort());
    assert.ok(blobLines.every((e) => e.who === "apikey:ci" && e.repository === "team/model" && e.status === 201 && e.reference === undefined));

    // a mount from a repository ci may not read: refused (a denial), the upload starts as a session instead
    const mount = await fetch(`${reg.base}/v2/team/model/blobs/uploads/?mount=${blobs[0]}&from=other/secret`, { method: "POST", headers: { authorization: basic("ci", keys.ci!) } });
    assert.equal(mount.status, 202);
    await mount.arrayBuffer();
    const [mountDeny] = await waitFor((e) => e.action === "deny" && e.repository === "other/secret");
    assert.deepEqual([mountDeny!.who, mountDeny!.attempt, mountDeny!.status], ["apikey:ci", "pull", 202]);

    // anonymous push: the token endpoint grants nothing, the client's retry with that token is refused
    const anon = await runMf(["push", name, "--insecure", "-q"], homes.nobody);
    assert.equal(anon.code, 1);
    const anonDenies = await waitFor((e) => e.action === "deny" && e.who === "anonymous");
    for (const d of anonDenies) {
      assert.deepEqual([d.repository, d.status], ["team/model", 401]);
      assert.ok(["pull", "push", "pull,push"].includes(d.attempt!), d.attempt);
      assert.match(d.reason!, /anonymous access does not allow this/);
    }

    // an unknown API key, on /v2/ and at the token endpoint
    const bogus = "mfk_this-is-not-a-key-0123456789abcdef";
    const v2 = await fetch(`${reg.base}/v2/team/model/manifests/latest`, { headers: { authorization: basic("ci", bogus) } });
    assert.equal(v2.status, 401);
    const tok = await fetch(`${reg.base}/token?scope=repository:team/model:pull`, { headers: { authorization: basic("ci", bogus) } });
    assert.equal(tok.status, 401);
    const unknown = await waitFor((e) => e.action === "deny" && e.reason === "unknown API key", 2);
    assert.deepEqual(unknown.map((e) => [e.attempt, e.repository, e.status]).sort(), [["pull", "team/model", 401], ["token", "team/model", 401]]);
    assert.equal(unknown.find((e) => e.attempt === "pull")!.reference, "latest");

    // a key beyond its rights: reader may pull, not delete (403)
    const forbidden = await fetch(`${reg.base}/v2/team/model/manifests/latest`, { method: "DELETE", headers: { authorization: basic("reader", keys.reader!) } });
    assert.equal(forbidden.status, 403);
    const [readerDeny] = await waitFor((e) => e.action === "deny" && e.who === "apikey:reader");
    assert.deepEqual([readerDeny!.attempt, readerDeny!.repository, readerDeny!.reference, readerDeny!.status], ["delete", "team/model", "latest", 403]);

    // a token, used and then logged nowhere
    const granted = await fetch(`${reg.base}/token?scope=repository:team/model:pull,push,delete`, { headers: { authorization: basic("ci", keys.ci!) } });
    const { token } = (await granted.json()) as { token: string };
    const blobDelete = await fetch(`${reg.base}/v2/team/model/blobs/${manifest.config.digest}`, { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
    assert.equal(blobDelete.status, 202);
    const [blobGone] = await waitFor((e) => e.action === "delete-blob");
    assert.deepEqual([blobGone!.who, blobGone!.repository, blobGone!.digest, blobGone!.status], ["apikey:ci", "team/model", manifest.config.digest, 202]);

    // mf registry rm: the tag's delete names the digest it pointed at
    const rmTag = await runMf(["registry", "rm", "--insecure", `${host}/team/model:latest`], homes.ci);
    assert.equal(rmTag.code, 0, rmTag.stderr);
    const [tagGone] = await waitFor((e) => e.action === "delete-tag");
    assert.deepEqual([tagGone!.who, tagGone!.repository, tagGone!.reference, tagGone!.digest, tagGone!.status], ["apikey:ci", "team/model", "latest", built.digest, 202]);
    const byDigest = await fetch(`${reg.base}/v2/team/model/manifests/${built.digest}`, { method: "DELETE", headers: { authorization: basic("ci", keys.ci!) } });
    assert.equal(byDigest.status, 202);
    const [manifestGone] = await waitFor((e) => e.action === "delete-manifest");
    assert.deepEqual([manifestGone!.reference, manifestGone!.digest], [built.digest, built.digest]);

    // the bare challenge of the token handshake and successful pulls are not audited
    const all = await lines();
    assert.ok(all.every((e) => ["push", "push-blob", "delete-manifest", "delete-tag", "delete-blob", "deny"].includes(e.action)), JSON.stringify(all));
    const denials = all.filter((e) => e.action === "deny" && e.repository !== "other/secret");
    assert.ok(denials.every((e) => e.status === 401 || e.status === 403), JSON.stringify(denials));
    assert.deepEqual(denials.filter((e) => e.who === "apikey:ci"), [], "ci's own pushes and deletes were never refused");

    const text = await readFile(logPath, "utf8");
    for (const secret of [keys.ci!, keys.reader!, bogus, token, ...token.split(".")]) assert.ok(!text.includes(secret), `a secret in the audit log: ${secret.slice(0, 8)}…`);
    assert.doesNotMatch(text, /authorization|bearer|basic |sig=|\.[A-Za-z0-9_-]{20,}/i);
  });

  it("after the log is renamed (rotation), the next lines go to a new file at the path", async () => {
    await rename(logPath, `${logPath}.1`);
    const res = await fetch(`${reg.base}/v2/team/model/manifests/latest`, { method: "DELETE", headers: { authorization: basic("reader", keys.reader!) } });
    assert.equal(res.status, 403);
    const [line] = await waitFor((e) => e.action === "deny", 1, logPath);
    assert.equal(line!.who, "apikey:reader");
    assert.ok((await lines(`${logPath}.1`)).length > 0, "the rotated file keeps its lines");
  });
});

describe("mf registry serve --audit-log: s3", () => {
  it("an open registry on S3 audits a push and a tag delete by anonymous", { skip: S3_MISSING }, async () => {
    const set = await replicaSet("audit");
    try {
      const log = join(set.dir, "audit.jsonl");
      const replica = await set.start(["--audit-log", log]);
      const image = await pushImage(replica.base, "team/model", "v1");
      const del = await fetch(`${replica.base}/v2/team/model/manifests/v1`, { method: "DELETE" });
      assert.equal(del.status, 202);
      const [push] = await waitForLines(log, (e) => e.action === "push");
      assert.deepEqual([push!.who, push!.repository, push!.reference, push!.digest, push!.status], ["anonymous", "team/model", "v1", image.digest, 201]);
      const [gone] = await waitForLines(log, (e) => e.action === "delete-tag");
      assert.deepEqual([gone!.who, gone!.reference, gone!.digest, gone!.status], ["anonymous", "v1", image.digest, 202]);
    } finally {
      await set.close();
    }
  });
});

describe("mf registry serve --audit-log: a file it cannot append to", () => {
  it("stops the start with a message naming it", async () => {
    const dir = await tempDir("mf-audit-bad-");
    try {
      const bad = join(dir, "missing-dir", "audit.jsonl");
      const run = await runMf(["registry", "serve", "--root", join(dir, "root"), "--addr", "127.0.0.1:0", "--audit-log", bad]);
      assert.equal(run.code, 1);
      assert.match(run.stderr, new RegExp(`^mf: --audit-log ${bad.replace(/[.]/g, "\\.")}: cannot append to it \\(ENOENT`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
