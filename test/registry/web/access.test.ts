/**
 * The web page under an access file: anonymous visitors see what anonymous may pull; a sign-in with an
 * API key gives an HttpOnly, SameSite=Strict, expiring session cookie scoped to the page's API, which
 * shows what that key may pull and nothing else, authorises nothing on /v2/, dies with the key, and a
 * repository the viewer may not pull answers exactly like one that does not exist. Each tag records its
 * pusher (the API key's name) at push time.
 */
import { strict as assert } from "node:assert";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { addApiKey, revokeApiKey } from "../../../registry/server/access-edit.js";
import { AccessFile, createRegistryServer, createTokenAuth, FsDriver } from "../../../registry/server/index.js";
import { fingerprint } from "../../../registry/protocol/keys.js";
import { webPage } from "../../../registry/server/ui/index.js";
import { clientWith, makeKey, SECRET } from "../auth/helpers.js";
import { buildModel } from "../client/helpers.js";
import { tempDir } from "../peers.js";
import { api, newStore, pushModel, signIn, startWebRegistry, type WebRegistry } from "./helpers.js";

describe("registry web page with an access file", () => {
  let reg: WebRegistry;
  let dir: string;
  let now = Date.now(); // signed token requests must be within minutes of the registry's clock
  let ci: string;
  let viewer: string;
  const listed = async (cookie?: string) => (await api(reg.base, "/ui/api/repositories", { cookie })).body.items.map((r: { name: string }) => r.name);

  before(async () => {
    dir = await tempDir("mf-web-access-");
    reg = await startWebRegistry({ yaml: 'anonymous:\n  "public/*": [pull]\n', clock: () => now });
    let text = await readFile(reg.accessPath, "utf8");
    const a = addApiKey(text, "ci", { "public/*": ["pull", "push"], "team/*": ["pull", "push"] });
    const b = addApiKey(a.text, "viewer", { "team/a*": ["pull"] });
    text = b.text;
    ci = a.secret;
    viewer = b.secret;
    await reg.setAccess(text);
    await reg.waitForPolicy((p) => p.current().apiKeys.length === 2);
    const store = await newStore();
    for (const [i, name] of ["public/open:latest", "team/alpha:latest", "team/bravo:latest"].entries()) {
      await pushModel(store, dir, `${reg.host}/${name}`, { apiKey: ci, seed: i + 1 });
    }
  });
  after(async () => {
    await reg?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("anonymous visitors see only what anonymous may pull; a hidden repository answers like a missing one", async () => {
    assert.deepEqual(await listed(), ["public/open"]);
    assert.deepEqual((await api(reg.base, "/ui/api/info")).body, { accessControl: true, signedIn: null, registry: reg.host });
    const hidden = await api(reg.base, "/ui/api/repository?name=team/alpha");
    const missing = await api(reg.base, "/ui/api/repository?name=team/zulu");
    assert.equal(hidden.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(hidden.body.errors[0].message.replace("team/alpha", "X"), missing.body.errors[0].message.replace("team/zulu", "X"));
    assert.equal((await api(reg.base, "/ui/api/manifest?name=team/alpha&ref=latest")).status, 404);
    assert.equal((await api(reg.base, "/ui/api/repositories?q=alpha")).body.total, 0);
  });

  it("each tag records who pushed it: the API key's name, or the SSH key's fingerprint", async () => {
    const r = await api(reg.base, "/ui/api/repository?name=public/open");
    assert.deepEqual(r.body.tags.map((t: { tag: string; pusher: string; pushedAt: number }) => [t.tag, t.pusher, t.pushedAt]), [["latest", "apikey:ci", now]]);
    const alice = makeKey(dir, "alice");
    await reg.setAccess(`${await readFile(reg.accessPath, "utf8")}keys:\n  - key: ${alice.line}\n    access:\n      "public/*": [pull, push]\n`);
    await reg.waitForPolicy((p) => p.current().keys.length === 1);
    const name = `${reg.host}/public/open:by-alice`;
    const store = await newStore();
    await buildModel(store, dir, name, { seed: 1 });
    await clientWith({ key: alice.key }).push(store, name, { insecure: true });
    const tags = (await api(reg.base, "/ui/api/repository?name=public/open")).body.tags;
    assert.deepEqual(tags.map((t: { tag: string; pusher: string }) => [t.tag, t.pusher]), [["by-alice", `key:${fingerprint(alice.key.publicBlob)}`], ["latest", "apikey:ci"]]);
  });

  it("sign-in gives a scoped, HttpOnly, SameSite=Strict, expiring cookie that shows what the key may pull", async () => {
    const r = await api(reg.base, "/ui/api/session", { method: "POST", origin: reg.base, json: { key: viewer } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { signedIn: "viewer" });
    const set = [r.headers["set-cookie"]].flat()[0]!;
    assert.match(set, /^mf_session=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=\/ui\/api; Max-Age=43200; HttpOnly; SameSite=Strict$/);
    assert.doesNotMatch(set, /Secure/, "http: no Secure attribute (a browser would drop the cookie)");
    assert.ok(!set.includes(viewer));
    const cookie = set.split(";")[0]!;
    assert.deepEqual(await listed(cookie), ["public/open", "team/alpha"]);
    assert.equal((await api(reg.base, "/ui/api/info", { cookie })).body.signedIn, "viewer");
    assert.equal((await api(reg.base, "/ui/api/repository?name=team/alpha", { cookie })).status, 200);
    assert.equal((await api(reg.base, "/ui/api/repository?name=team/bravo", { cookie })).status, 404, "viewer may not pull team/bravo");
    assert.deepEqual(await listed(await signIn(reg.base, ci)), ["public/open", "team/alpha", "team/bravo"]);
    // the cookie authorises nothing on the registry API or the token endpoint
    for (const path of ["/v2/team/alpha/tags/list", "/v2/team/alpha/manifests/latest"]) {
      assert.equal((await api(reg.base, path, { cookie })).status, 401, path);
    }
    const token = await api(reg.base, "/token?scope=repository:team/alpha:pull&service=mf-registry", { cookie });
    assert.equal(token.status, 200);
    const claims = JSON.parse(Buffer.from(token.body.token.split(".")[1], "base64url").toString());
    assert.deepEqual([claims.sub, claims.access], ["anonymous", []]);
    // tampered or expired: back to anonymous
    const [name, value] = cookie.split("=") as [string, string];
    const forged = `${name}=${Buffer.from(JSON.stringify({ k: "ci", h: "x", e: now + 1e9 })).toString("base64url")}.${value.split(".")[1]}`;
    assert.deepEqual(await listed(forged), ["public/open"]);
    now += 12 * 3600_000 + 1;
    assert.deepEqual(await listed(cookie), ["public/open"]);
    now -= 12 * 3600_000 + 1;
    assert.deepEqual(await listed(cookie), ["public/open", "team/alpha"]);
  });

  it("revoking the API key ends its sessions", async () => {
    const cookie = await signIn(reg.base, viewer);
    assert.deepEqual(await listed(cookie), ["public/open", "team/alpha"]);
    await reg.setAccess(revokeApiKey(await readFile(reg.accessPath, "utf8"), "viewer"));
    await reg.waitForPolicy((p) => p.current().apiKeys.length === 1);
    assert.deepEqual(await listed(cookie), ["public/open"]);
    assert.equal((await api(reg.base, "/ui/api/info", { cookie })).body.signedIn, null);
    // re-added under the same name with a new secret: the old session stays dead
    const again = addApiKey(await readFile(reg.accessPath, "utf8"), "viewer", { "team/a*": ["pull"] });
    await reg.setAccess(again.text);
    await reg.waitForPolicy((p) => p.current().apiKeys.length === 2);
    assert.deepEqual(await listed(cookie), ["public/open"]);
    viewer = again.secret;
  });

  it("sign-in refuses other origins, non-JSON bodies and unknown keys, never echoing the key", async () => {
    const wrong = "mfk_" + "A".repeat(43);
    const cases: [Parameters<typeof api>[2], number][] = [
      [{ method: "POST", json: { key: viewer } }, 403],
      [{ method: "POST", origin: "http://evil.example", json: { key: viewer } }, 403],
      [{ method: "POST", origin: reg.base, headers: { "content-type": "text/plain" } }, 400],
      [{ method: "POST", origin: reg.base, json: { key: wrong } }, 401],
      [{ method: "POST", origin: reg.base, json: ["x"] }, 400],
      [{ method: "POST", origin: reg.base, json: { key: "x".repeat(5000) } }, 400],
    ];
    for (const [init, status] of cases) {
      const r = await api(reg.base, "/ui/api/session", init);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.headers["set-cookie"], undefined);
      assert.ok(!JSON.stringify(r.body).includes(viewer) && !JSON.stringify(r.body).includes(wrong));
    }
    const out = await api(reg.base, "/ui/api/session/end", { method: "POST", origin: reg.base });
    assert.match([out.headers["set-cookie"]].flat()[0]!, /^mf_session=; Path=\/ui\/api; Max-Age=0; HttpOnly; SameSite=Strict/);
  });
});

describe("registry web page sessions behind an https public URL", () => {
  it("the cookie is Secure, and sign-in takes only the public URL's origin", async () => {
    const dir = await tempDir("mf-web-https-");
    const accessPath = join(dir, "access.yaml");
    const added = addApiKey("", "viewer", { "team/*": ["pull"] });
    await writeFile(accessPath, added.text);
    const access = await AccessFile.open(accessPath, { pollMs: 0 });
    const storage = new FsDriver({ root: join(dir, "data") });
    const publicUrl = "https://registry.example";
    const app = createRegistryServer({ storage, secret: SECRET, publicUrl, auth: createTokenAuth({ access, secret: SECRET, storage, publicUrl }), web: webPage({ access }) });
    try {
      const signIn = (origin: string) => app.inject({ method: "POST", url: "/ui/api/session", headers: { origin, "content-type": "application/json" }, payload: JSON.stringify({ key: added.secret }) });
      assert.equal((await signIn("http://registry.example")).statusCode, 403, "the http origin of an https registry is another origin");
      const r = await signIn(publicUrl);
      assert.equal(r.statusCode, 200);
      assert.match(String(r.headers["set-cookie"]), /; HttpOnly; SameSite=Strict; Secure$/);
    } finally {
      access.close();
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("with an auth hook but no access file given to the page, the page shows nothing", async () => {
    const dir = await tempDir("mf-web-closed-");
    const storage = new FsDriver({ root: join(dir, "data") });
    const app = createRegistryServer({ storage, secret: SECRET, auth: { authorize() {} }, web: webPage() });
    try {
      await storage.putContent("repositories/x/_manifests/tags/latest", Buffer.from("sha256:" + "0".repeat(64)));
      const r = await app.inject({ url: "/ui/api/repositories" });
      assert.deepEqual([r.statusCode, r.json().total], [200, 0]);
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
