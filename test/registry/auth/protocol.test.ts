/**
 * The wire protocol of key-based auth, driven by hand: the exact Ollama client flow of compat.md §4
 * (key read from an OpenSSH file, signed GET to the token URL, Bearer afterwards), and each way a request
 * can be forged, replayed or stretched, refused.
 */
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import ssh2 from "ssh2";
import { request } from "undici";
import { keysDir, makeKey, startAuthRegistry, type AuthRegistry, type Keyed } from "./helpers.js";

function digestBytes(b: Buffer): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function http(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Res> {
  const r = await request(url, { method: method as "GET", headers, body });
  return { status: r.statusCode, headers: r.headers, text: await r.body.text() };
}

/** Go's url.QueryEscape, which Ollama's url.Values.Encode uses. */
function goEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%20/g, "+");
}

/** What Ollama's registryChallenge.URL() builds: realm + service, scope, ts, nonce, sorted by key. */
function ollamaTokenUrl(challenge: string, opts: { ts?: number; nonce?: string } = {}): string {
  const get = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(challenge)?.[1] ?? "";
  const values: [string, string][] = [
    ["service", get("service")],
    ...get("scope").split(" ").map((s): [string, string] => ["scope", s]),
    ["ts", String(opts.ts ?? Math.floor(Date.now() / 1000))],
    ["nonce", opts.nonce ?? randomBytes(16).toString("base64url")],
  ];
  values.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${get("realm")}?${values.map(([k, v]) => `${goEscape(k)}=${goEscape(v)}`).join("&")}`;
}

/** Ollama's auth.Sign over `GET,<url>,<base64(hex(sha256("")))>` with the key from an OpenSSH file. */
function ollamaSign(keyFile: string, url: string): string {
  const key = ssh2.utils.parseKey(readFileSync(keyFile));
  if (key instanceof Error || Array.isArray(key)) throw new Error("bad key");
  const bodyHash = Buffer.from(createHash("sha256").update("").digest("hex")).toString("base64");
  const sig = key.sign(Buffer.from(`GET,${url},${bodyHash}`)) as Buffer;
  const pub = readFileSync(`${keyFile}.pub`, "utf8").split(" ")[1]!;
  return `${pub}:${Buffer.from(sig).toString("base64")}`;
}

describe("the token protocol on the wire", () => {
  let dir: string;
  let alice: Keyed;
  let mallory: Keyed;
  let reg: AuthRegistry;
  let now = Date.now();
  let manifestUrl: string;
  let blobDigest: string;

  const challengeFor = async (url: string, method = "GET"): Promise<string> => {
    const r = await http(method, url);
    assert.equal(r.status, 401, r.text);
    return String(r.headers["www-authenticate"]);
  };
  const tokenWith = async (url: string, authorization: string): Promise<Res> => http("GET", url, { authorization });
  const bearer = async (scopeUrl: string): Promise<string> => {
    const url = ollamaTokenUrl(await challengeFor(scopeUrl), { ts: Math.floor(now / 1000) });
    const r = await tokenWith(url, ollamaSign(alice.path, url));
    assert.equal(r.status, 200, r.text);
    return (JSON.parse(r.text) as { token: string }).token;
  };

  before(async () => {
    dir = await keysDir();
    alice = makeKey(dir, "alice");
    mallory = makeKey(dir, "mallory");
    reg = await startAuthRegistry(`keys:\n  - key: ${alice.line}\n    access:\n      "library/*": [pull, push]\n      "other/*": [pull]\n`, {
      clock: () => now, tokenTtlS: 60,
    });
    manifestUrl = `${reg.base}/v2/library/m/manifests/latest`;
    // store a blob and a manifest with a token, as Ollama's push would
    const pushToken = await (async () => {
      const url = ollamaTokenUrl(`Bearer realm="${reg.base}/token",service="mf-registry",scope="repository:library/m:pull,push"`, { ts: Math.floor(now / 1000) });
      return (JSON.parse((await tokenWith(url, ollamaSign(alice.path, url))).text) as { token: string }).token;
    })();
    const blob = Buffer.from("model bytes");
    blobDigest = digestBytes(blob);
    const auth = { authorization: `Bearer ${pushToken}` };
    const up = await http("POST", `${reg.base}/v2/library/m/blobs/uploads/?digest=${blobDigest}`, { ...auth, "content-type": "application/octet-stream" }, blob);
    assert.equal(up.status, 201, up.text);
    const config = Buffer.from("{}");
    const configDigest = digestBytes(config);
    assert.equal((await http("POST", `${reg.base}/v2/library/m/blobs/uploads/?digest=${configDigest}`, auth, config)).status, 201);
    const manifest = JSON.stringify({
      schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.ollama.image.model", digest: blobDigest, size: blob.length }],
    });
    const put = await http("PUT", manifestUrl, { ...auth, "content-type": "application/vnd.docker.distribution.manifest.v2+json" }, Buffer.from(manifest));
    assert.equal(put.status, 201, put.text);
  });
  after(async () => {
    await reg?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("follows Ollama's flow: 401 challenge on the same host, signed GET to the realm, then Bearer", async () => {
    const challenge = await challengeFor(manifestUrl);
    assert.equal(challenge, `Bearer realm="${reg.base}/token",service="mf-registry",scope="repository:library/m:pull"`);
    const url = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) });
    assert.equal(new URL(url).host, new URL(reg.base).host, "the realm is on the registry's host and port");
    const r = await tokenWith(url, ollamaSign(alice.path, url));
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text) as { token: string; access_token: string; expires_in: number; issued_at: string };
    assert.equal(body.access_token, body.token);
    assert.equal(body.expires_in, 60);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
    const claims = JSON.parse(Buffer.from(body.token.split(".")[1]!, "base64url").toString()) as { access: unknown; aud: string };
    assert.deepEqual(claims.access, [{ type: "repository", name: "library/m", actions: ["pull"] }]);
    assert.equal(claims.aud, "mf-registry");
    const m = await http("GET", manifestUrl, { authorization: `Bearer ${body.token}`, accept: "application/vnd.docker.distribution.manifest.v2+json" });
    assert.equal(m.status, 200, m.text);
    // the blob GET answers 307 to a signed URL that Ollama fetches without Authorization
    const b = await http("GET", `${reg.base}/v2/library/m/blobs/${blobDigest}`, { authorization: `Bearer ${body.token}` });
    assert.equal(b.status, 307);
    const loc = String(b.headers.location);
    const got = await http("GET", loc, { range: "bytes=0-4" });
    assert.equal(got.status, 206);
    assert.equal(got.text, "model");
  });

  it("grants only the intersection of what was asked and what the key may do", async () => {
    const url = ollamaTokenUrl(`Bearer realm="${reg.base}/token",service="mf-registry",scope="repository:other/x:pull,push,delete repository:secret/x:pull"`, { ts: Math.floor(now / 1000) });
    const r = await tokenWith(url, ollamaSign(alice.path, url));
    const claims = JSON.parse(Buffer.from((JSON.parse(r.text) as { token: string }).token.split(".")[1]!, "base64url").toString()) as { access: unknown };
    assert.deepEqual(claims.access, [{ type: "repository", name: "other/x", actions: ["pull"] }]);
  });

  it("refuses a forged signature, a signature by an unlisted key, and a signature over another URL", async () => {
    const challenge = await challengeFor(manifestUrl);
    const url = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) });
    const pub = alice.line.split(" ")[1]!;
    const forged = await tokenWith(url, `${pub}:${randomBytes(64).toString("base64")}`);
    assert.equal(forged.status, 401);
    // mallory signs correctly but claims alice's public key
    const malSig = ollamaSign(mallory.path, url).split(":")[1]!;
    assert.equal((await tokenWith(url, `${pub}:${malSig}`)).status, 401);
    // mallory with her own key: not listed
    const unlisted = await tokenWith(url, ollamaSign(mallory.path, url));
    assert.equal(unlisted.status, 401);
    assert.match(unlisted.text, /not authorised/);
    // alice's real signature, but over a URL with other parameters
    const other = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) });
    assert.equal((await tokenWith(url, ollamaSign(alice.path, other))).status, 401);
    const wider = url.replace("pull", "pull%2Cpush");
    assert.equal((await tokenWith(wider, ollamaSign(alice.path, url))).status, 401);
  });

  it("refuses a timestamp outside ±5 minutes and a replayed nonce", async () => {
    const challenge = await challengeFor(manifestUrl);
    const stale = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) - 301 });
    const r = await tokenWith(stale, ollamaSign(alice.path, stale));
    assert.equal(r.status, 401);
    assert.match(r.text, /timestamp/);
    const future = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) + 301 });
    assert.equal((await tokenWith(future, ollamaSign(alice.path, future))).status, 401);
    const url = ollamaTokenUrl(challenge, { ts: Math.floor(now / 1000) - 200 });
    const sig = ollamaSign(alice.path, url);
    assert.equal((await tokenWith(url, sig)).status, 200);
    const replay = await tokenWith(url, sig);
    assert.equal(replay.status, 401);
    assert.match(replay.text, /nonce/);
  });

  it("refuses a token with tampered claims, an expired token, and a token used on another repository", async () => {
    const token = await bearer(manifestUrl);
    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as { access: { actions: string[]; name: string }[] };
    claims.access[0]!.actions = ["pull", "push"];
    const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
    assert.equal((await http("PUT", manifestUrl, { authorization: `Bearer ${tampered}` }, Buffer.from("{}"))).status, 401);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${p}.`;
    assert.equal((await http("GET", manifestUrl, { authorization: `Bearer ${unsigned}` })).status, 401);
    // another repository alice may use: the token does not cover it → 401 with that scope
    const elsewhere = await http("GET", `${reg.base}/v2/library/other/manifests/latest`, { authorization: `Bearer ${token}` });
    assert.equal(elsewhere.status, 401);
    assert.match(String(elsewhere.headers["www-authenticate"]), /scope="repository:library\/other:pull"/);
    // a repository alice may not use: 403 DENIED
    const denied = await http("GET", `${reg.base}/v2/secret/x/manifests/latest`, { authorization: `Bearer ${token}` });
    assert.equal(denied.status, 403);
    assert.equal((JSON.parse(denied.text) as { errors: { code: string }[] }).errors[0]!.code, "DENIED");
    // the same token works until it expires
    assert.equal((await http("GET", manifestUrl, { authorization: `Bearer ${token}` })).status, 200);
    now += 61_000;
    try {
      const expired = await http("GET", manifestUrl, { authorization: `Bearer ${token}` });
      assert.equal(expired.status, 401);
      assert.match(String(expired.headers["www-authenticate"]), /^Bearer realm=/);
    } finally {
      now -= 61_000;
    }
  });

  it("signed blob URLs serve only the blob they name, and only briefly", async () => {
    const token = await bearer(manifestUrl);
    const b = await http("GET", `${reg.base}/v2/library/m/blobs/${blobDigest}`, { authorization: `Bearer ${token}` });
    const loc = new URL(String(b.headers.location));
    const other = digestBytes(Buffer.from("{}"));
    const swapped = `${reg.base}${loc.pathname.replace(blobDigest, other)}${loc.search}`;
    assert.equal((await http("GET", swapped)).status, 403);
    assert.equal((await http("GET", loc.toString())).status, 200);
    now += 16 * 60_000;
    try {
      assert.equal((await http("GET", loc.toString())).status, 403);
    } finally {
      now -= 16 * 60_000;
    }
  });

  it("without credentials, /v2/ and guarded routes answer 401 with a Bearer challenge", async () => {
    const base = await http("GET", `${reg.base}/v2/`);
    assert.equal(base.status, 401);
    assert.equal(base.headers["www-authenticate"], `Bearer realm="${reg.base}/token",service="mf-registry"`);
    const push = await http("POST", `${reg.base}/v2/library/m/blobs/uploads/`);
    assert.equal(push.status, 401);
    assert.match(String(push.headers["www-authenticate"]), /scope="repository:library\/m:pull,push"/);
    const cat = await http("GET", `${reg.base}/v2/_catalog`);
    assert.match(String(cat.headers["www-authenticate"]), /scope="registry:catalog:\*"/);
  });
});

describe("key generation", () => {
  it("every key mf creates is well-formed: 1000 in a row load back, and ssh-keygen reads a sample", async () => {
    // ssh2's generator alone writes a malformed private key about once in 160 times
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { execFileSync } = await import("node:child_process");
    const { ensurePrivateKey, loadPrivateKey } = await import("../../../registry/protocol/keys.js");
    const dir = mkdtempSync(join(tmpdir(), "mf-keygen-"));
    try {
      for (let i = 0; i < 1000; i++) {
        const path = join(dir, `k${i}`);
        const { created } = ensurePrivateKey(path, `k${i}@test`);
        assert.equal(created, true);
        assert.doesNotThrow(() => loadPrivateKey(path), `key ${i}`);
      }
      let sshKeygen = true;
      try {
        execFileSync("ssh-keygen", ["-?"], { stdio: "ignore" });
      } catch (e) {
        sshKeygen = (e as NodeJS.ErrnoException).code !== "ENOENT";
      }
      if (sshKeygen) for (let i = 0; i < 1000; i += 50) execFileSync("ssh-keygen", ["-y", "-f", join(dir, `k${i}`)], { stdio: "pipe" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
