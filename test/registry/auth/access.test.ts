/**
 * Key-based access control end to end through the registry client: real ed25519 key pairs, a live
 * registry on 127.0.0.1:0 with an access file, models built from generated GGUFs.
 */
import { strict as assert } from "node:assert";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LocalStore } from "../../../core/store.js";
import type { RegistryClient } from "../../../registry/client/index.js";
import { buildModel, newStore } from "../client/helpers.js";
import { clientWith, keysDir, makeKey, startAuthRegistry, type AuthRegistry, type Keyed } from "./helpers.js";

function accessYaml(k: Record<string, Keyed>): string {
  return `anonymous:
  "public/*": [pull]
keys:
  - key: ${k.admin!.line}
    access:
      "**": [pull, push, delete]
    catalog: true
  - key: ${k.reader!.line}
    access:
      "team-a/*": [pull]
  - key: ${k.teamA!.line}
    access:
      "team-a/*": [pull, push]
`;
}

const isCode = (code: string) => (e: unknown) => (e as { code?: string }).code === code;

async function listTree(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true })).map(String).sort();
  } catch {
    return [];
  }
}

describe("registry access control with ssh keys", () => {
  let dir: string;
  let keys: Record<string, Keyed>;
  let reg: AuthRegistry;
  let src: LocalStore;
  let dst: LocalStore;
  const clients: RegistryClient[] = [];
  const client = (opts: Parameters<typeof clientWith>[0]) => {
    const c = clientWith(opts);
    clients.push(c);
    return c;
  };
  let name: (repo: string) => string;

  before(async () => {
    dir = await keysDir();
    keys = { admin: makeKey(dir, "admin"), reader: makeKey(dir, "reader"), teamA: makeKey(dir, "teama"), stranger: makeKey(dir, "stranger") };
    reg = await startAuthRegistry(accessYaml(keys));
    name = (repo) => `${reg.host}/${repo}:latest`;
    src = await newStore("mf-auth-src-");
    dst = await newStore("mf-auth-dst-");
    for (const repo of ["team-a/x", "team-b/x", "public/m", "team-a/fresh", "team-b/fresh", "public/fresh", "team-a/denied"]) {
      await buildModel(src, dir, name(repo));
    }
  });
  after(async () => {
    for (const c of clients) await c.close();
    await reg?.close();
    for (const d of [dir, src?.root, dst?.root]) if (d) await rm(d, { recursive: true, force: true });
  });

  it("an allowed key pushes and pulls; the model arrives with the same digest", async () => {
    const admin = client({ key: keys.admin!.key });
    for (const repo of ["team-a/x", "team-b/x", "public/m"]) {
      const pushed = await admin.push(src, name(repo), { insecure: true });
      const pulled = await admin.pull(dst, name(repo), { insecure: true });
      assert.equal(pulled.digest, pushed.digest);
    }
    const teamA = client({ key: keys.teamA!.key });
    const r = await teamA.push(src, name("team-a/fresh"), { insecure: true });
    assert.equal((await teamA.pull(dst, name("team-a/fresh"), { insecure: true })).digest, r.digest);
  });

  it("an unlisted key gets 401 (UNAUTHORIZED) for pull and push", async () => {
    const stranger = client({ key: keys.stranger!.key });
    await assert.rejects(stranger.pull(dst, name("team-a/x"), { insecure: true }), (e: Error & { code?: string }) =>
      e.code === "UNAUTHORIZED" && /not authorised/.test(e.message));
    await assert.rejects(stranger.push(src, name("team-a/fresh"), { insecure: true }), isCode("UNAUTHORIZED"));
  });

  it("a pull-only key can pull but gets 403 DENIED on push, with nothing stored", async () => {
    const reader = client({ key: keys.reader!.key });
    await reader.pull(dst, name("team-a/x"), { insecure: true });
    const before = await listTree(join(reg.root));
    await assert.rejects(reader.push(src, name("team-a/denied"), { insecure: true }), (e: Error & { code?: string }) =>
      e.code === "DENIED" && /push on team-a\/denied is not allowed/.test(e.message));
    const afterTree = await listTree(join(reg.root));
    assert.deepEqual(afterTree.filter((p) => !p.startsWith("auth")), before.filter((p) => !p.startsWith("auth")), "no blob, upload or repository was written");
    assert.ok(!afterTree.some((p) => p.includes("team-a/denied")));
  });

  it("a key for team-a/* cannot pull or push team-b/x", async () => {
    const teamA = client({ key: keys.teamA!.key });
    await assert.rejects(teamA.pull(dst, name("team-b/x"), { insecure: true }), isCode("DENIED"));
    await assert.rejects(teamA.push(src, name("team-b/fresh"), { insecure: true }), isCode("DENIED"));
    assert.ok(!(await listTree(reg.root)).some((p) => p.includes("team-b/fresh")));
  });

  it("deletes need the delete action: a pull+push key gets 403 DENIED and nothing goes; a delete key removes", async () => {
    const digest = (await src.readModel(name("team-a/x"))).digest;
    const manifestUrl = `${reg.base}/v2/team-a/x/manifests/${digest}`;
    const blobUrl = `${reg.base}/v2/team-a/x/blobs/${(await src.readModel(name("team-a/x"))).manifest.config.digest}`;
    const teamA = client({ key: keys.teamA!.key });
    for (const url of [manifestUrl, blobUrl]) {
      await assert.rejects(teamA.http.send({ method: "DELETE", url }), (e: Error & { code?: string }) =>
        e.code === "DENIED" && /delete on team-a\/x is not allowed/.test(e.message));
    }
    const still = await teamA.http.send({ method: "HEAD", url: manifestUrl, headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
    still.body.resume();
    assert.equal(still.status, 200, "the manifest is still there");
    const admin = client({ key: keys.admin!.key });
    const del = await admin.http.send({ method: "DELETE", url: manifestUrl });
    del.body.resume();
    assert.equal(del.status, 202);
    await assert.rejects(admin.http.send({ method: "HEAD", url: manifestUrl }), (e: Error & { code?: string }) => e.code === "NAME_UNKNOWN" || e.code === "MANIFEST_UNKNOWN");
    // put it back for the tests that follow
    await admin.push(src, name("team-a/x"), { insecure: true });
  });

  it("anonymous clients pull a public namespace but cannot push to it, nor pull elsewhere", async () => {
    const anon = client({});
    const fresh = await newStore("mf-auth-anon-");
    try {
      const r = await anon.pull(fresh, name("public/m"), { insecure: true });
      assert.equal(r.digest, (await src.readModel(name("public/m"))).digest);
      await assert.rejects(anon.push(src, name("public/fresh"), { insecure: true }), isCode("UNAUTHORIZED"));
      await assert.rejects(anon.pull(fresh, name("team-a/x"), { insecure: true }), isCode("UNAUTHORIZED"));
    } finally {
      await rm(fresh.root, { recursive: true, force: true });
    }
  });

  it("an authenticated key also gets what anonymous may do", async () => {
    const teamA = client({ key: keys.teamA!.key });
    const fresh = await newStore("mf-auth-union-");
    try {
      await teamA.pull(fresh, name("public/m"), { insecure: true });
    } finally {
      await rm(fresh.root, { recursive: true, force: true });
    }
  });
});
