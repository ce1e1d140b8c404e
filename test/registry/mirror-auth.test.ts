/**
 * The pull-through mirror's upstream credentials, with real processes on 127.0.0.1: Debian's
 * `docker-registry` (distribution 2.8) with token auth whose realm is a token server on another port
 * (as Docker Hub's is auth.docker.io), pulled through anonymously and with a basic-auth login from the
 * config file; an ssh key is never signed for that other host. Then a `mf registry serve --access` as
 * upstream, pulled through with Ollama's key-signed token requests, and a mirror with its own access
 * file: pulling through needs `pull` on the local name.
 */
import { strict as assert } from "node:assert";
import { createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DISTRIBUTION_MISSING } from "./client/helpers.js";
import { makeKey } from "./auth/helpers.js";
import { pushImage, sha256 } from "./oci-client.js";
import { OllamaUpstream } from "./ollama-upstream.js";
import { Cleanup, freePort, selfSignedCert, startDistribution, type DistributionRegistry, type SpawnedRegistry } from "./peers.js";

const made = new Cleanup();
after(() => made.cleanup());

const SERVICE = "mf-test-registry";
const ISSUER = "mf-test-token-server";
const USER = "ci-bot";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;

interface TokenServer {
  base: string;
  /** every request: its Authorization header and scope */
  requests: { authorization?: string; scope: string | null }[];
  close(): Promise<void>;
}

function b64url(x: Buffer | string): string {
  return Buffer.from(x).toString("base64url");
}

/**
 * A Docker-style token server: a basic-auth login gets pull and push on what it asks for, anyone gets
 * pull on `public/*`; tokens are ES256 JWTs with the certificate in `x5c`, as distribution verifies them.
 */
async function startTokenServer(certPem: string, keyPem: string): Promise<TokenServer> {
  const der = new X509Certificate(certPem).raw;
  const key = createPrivateKey(keyPem);
  const requests: TokenServer["requests"] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url!, "http://x");
    const scope = url.searchParams.get("scope");
    requests.push({ authorization: req.headers.authorization, scope });
    const auth = req.headers.authorization ?? "";
    let user: string | undefined;
    if (auth.startsWith("Basic ")) {
      const [u, p] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      if (u !== USER || p !== PASSWORD) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ details: "wrong login" }));
        return;
      }
      user = u;
    } else if (auth) {
      res.writeHead(401).end();
      return;
    }
    const access = url.searchParams.getAll("scope").flatMap((s) => {
      const [type, name, actions] = s.split(":");
      if (type !== "repository" || !name || !actions) return [];
      const wanted = actions.split(",");
      const granted = user ? wanted.filter((a) => a === "pull" || a === "push") : name.startsWith("public/") ? wanted.filter((a) => a === "pull") : [];
      return [{ type, name, actions: granted }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "ES256", x5c: [der.toString("base64")] };
    const claims = { iss: ISSUER, sub: user ?? "", aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString("hex"), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
    const body = JSON.stringify({ token: `${input}.${b64url(sig)}`, expires_in: 300 });
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** docker-registry whose token realm is the token server (another port). */
async function startTokenDistribution(realm: string, certFile: string): Promise<DistributionRegistry> {
  const d = await startDistribution({
    extraConfig: ["auth:", "  token:", `    realm: ${realm}/token`, `    service: ${SERVICE}`, `    issuer: ${ISSUER}`, `    rootcertbundle: ${certFile}`],
    readyStatus: 401,
  });
  if (!d) throw new Error("docker-registry is not installed");
  return d;
}

/** Pushes a small OCI image with a bearer token from the token server (basic login). */
async function pushWithToken(base: string, tokens: string, repo: string, tag: string): Promise<{ digest: string; bytes: Buffer; layer: Buffer }> {
  const login = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
  const t = await fetch(`${tokens}/token?service=${SERVICE}&scope=repository:${repo}:pull,push`, { headers: { authorization: login } });
  const headers = { authorization: `Bearer ${((await t.json()) as { token: string }).token}` };
  const layer = randomBytes(100_000);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
  for (const blob of [config, layer]) {
    const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
    assert.equal(start.status, 202, await start.text());
    const loc = new URL(start.headers.get("location")!, base);
    loc.searchParams.set("digest", sha256(blob));
    const put = await fetch(loc, { method: "PUT", body: blob, headers: { ...headers, "content-type": "application/octet-stream" } });
    assert.equal(put.status, 201, await put.text());
  }
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const bytes = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(layer), size: layer.length }],
  }));
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: bytes, headers: { ...headers, "content-type": mediaType } });
  assert.equal(res.status, 201, await res.text());
  return { digest: sha256(bytes), bytes, layer };
}

async function get(url: string, accept = "application/vnd.oci.image.manifest.v1+json"): Promise<{ status: number; bytes: Buffer; text: string }> {
  const res = await fetch(url, { headers: { accept } });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, bytes, text: bytes.toString() };
}

describe("mirror of docker-registry with a token realm on another port", { skip: DISTRIBUTION_MISSING }, () => {
  let tokens: TokenServer;
  let dist: DistributionRegistry;
  let mirror: SpawnedRegistry;
  let pub: Awaited<ReturnType<typeof pushWithToken>>;
  let priv: Awaited<ReturnType<typeof pushWithToken>>;

  before(async () => {
    const dir = await made.tempDir("mf-mirror-auth-");
    const { cert, key } = selfSignedCert(dir);
    tokens = await startTokenServer(readFileSync(cert, "utf8"), readFileSync(key, "utf8"));
    dist = await startTokenDistribution(tokens.base, cert);
    pub = await pushWithToken(dist.base, tokens.base, "public/img", "v1");
    priv = await pushWithToken(dist.base, tokens.base, "private/img", "v1");
    const sshKey = makeKey(dir, "mirror");
    await writeFile(join(dir, "password"), `${PASSWORD}\n`);
    const login = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
    const t = await fetch(`${tokens.base}/token?service=${SERVICE}&scope=repository:private/img:pull`, { headers: { authorization: login } });
    await writeFile(join(dir, "token"), ((await t.json()) as { token: string }).token);
    await writeFile(join(dir, "mirror.yml"), [
      "mirrors:",
      `  - namespace: anon`,
      `    upstream: ${dist.base}`,
      `  - namespace: basic`,
      `    upstream: ${dist.base}/private`,
      `    username: ${USER}`,
      `    passwordFile: password`,
      `    allow: [basic/img]`,
      `  - namespace: tok`,
      `    upstream: ${dist.base}/private`,
      `    tokenFile: token`,
      `  - namespace: keyed`,
      `    upstream: ${dist.base}`,
      `    keyFile: ${sshKey.path}`,
      "",
    ].join("\n"));
    mirror = await made.serve(join(dir, "mirror"), ["--config", join(dir, "mirror.yml"), "--verbose"]);
  });
  after(async () => {
    await dist?.close();
    await tokens?.close();
  });

  it("anonymous: an anonymous token from the realm on another host; what it does not grant is not mirrored", async () => {
    const m = await get(`${mirror.base}/v2/anon/public/img/manifests/v1`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.bytes, pub.bytes);
    const blob = await get(`${mirror.base}/v2/anon/public/img/blobs/${sha256(pub.layer)}`);
    assert.equal(blob.status, 200);
    assert.deepEqual(blob.bytes, pub.layer);
    assert.ok(tokens.requests.some((r) => !r.authorization && r.scope === "repository:public/img:pull"), "an anonymous token request to the realm");
    const refused = await get(`${mirror.base}/v2/anon/private/img/manifests/v1`);
    assert.equal(refused.status, 503, "upstream refused: the upstream's failure, nothing cached");
  });

  it("basic: the login from the config file goes to the realm for a token; the password never reaches the log", async () => {
    const m = await get(`${mirror.base}/v2/basic/img/manifests/v1`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.bytes, priv.bytes);
    const blob = await get(`${mirror.base}/v2/basic/img/blobs/${sha256(priv.layer)}`);
    assert.deepEqual(blob.bytes, priv.layer);
    assert.ok(tokens.requests.some((r) => r.authorization?.startsWith("Basic ") && r.scope?.startsWith("repository:private/img:")));
    assert.doesNotMatch(mirror.output(), new RegExp(PASSWORD));
    assert.doesNotMatch(mirror.output(), new RegExp(Buffer.from(`${USER}:${PASSWORD}`).toString("base64")));
  });

  it("a fixed bearer token from a file is sent as is: no token request; the allow-list from the config file holds", async () => {
    const before = tokens.requests.length;
    const m = await get(`${mirror.base}/v2/tok/img/manifests/v1`);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.bytes, priv.bytes);
    assert.equal(tokens.requests.length, before, "the token server is not asked");
    const outside = await get(`${mirror.base}/v2/basic/other/manifests/v1`);
    assert.equal(outside.status, 404);
    assert.match(outside.text, /NAME_UNKNOWN/);
  });

  it("an ssh key is never signed for a realm on another host: refused, and the realm never hears of it", async () => {
    const before = tokens.requests.length;
    const res = await get(`${mirror.base}/v2/keyed/public/img/manifests/v1`);
    assert.equal(res.status, 503);
    assert.match(res.text, /token realm on another host .*only signs for the registry's own host/);
    assert.equal(tokens.requests.length, before, "no request to the token server");
  });
});

describe("mirror of a keyed mf registry: Ollama's key-signed token requests", () => {
  it("the mirror signs with its configured key; without a key upstream refuses; the key's secret never reaches the log", async () => {
    const dir = await made.tempDir("mf-mirror-keyed-");
    const root = join(dir, "upstream");
    const open = await made.serve(root);
    const img = await pushImage(open.base, "library/model", "v1");
    open.child.kill("SIGTERM");
    await open.exited;
    const sshKey = makeKey(dir, "mirror");
    await writeFile(join(dir, "access.yml"), `keys:\n  - key: ${sshKey.line}\n    access:\n      "library/*": [pull]\n`);
    const port = await freePort();
    const upstream = await made.serve(root, ["--addr", `127.0.0.1:${port}`, "--public-url", `http://127.0.0.1:${port}`, "--access", join(dir, "access.yml")]);
    await writeFile(join(dir, "mirror.yml"), `mirrors:\n  - namespace: corp\n    upstream: ${upstream.base}/library\n    keyFile: ${sshKey.path}\n  - namespace: nokey\n    upstream: ${upstream.base}/library\n`);
    const mirror = await made.serve(join(dir, "mirror"), ["--config", join(dir, "mirror.yml"), "--verbose"]);
    const m = await get(`${mirror.base}/v2/corp/model/manifests/v1`, img.mediaType);
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.bytes, img.bytes);
    const layer = (JSON.parse(img.bytes.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    const blob = await get(`${mirror.base}/v2/corp/model/blobs/${layer}`);
    assert.equal(sha256(blob.bytes), layer);
    assert.equal((await get(`${mirror.base}/v2/nokey/model/manifests/v1`, img.mediaType)).status, 503);
    const secret = readFileSync(sshKey.path, "utf8").split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    assert.ok(!mirror.output().includes(secret.slice(0, 40)));
  });
});

describe("mirror with an access file: pulling through needs pull on the local name", () => {
  let ollama: OllamaUpstream;
  after(() => ollama?.close());

  it("a name the client may not pull is refused (401) before upstream is asked; an allowed one is pulled through", async () => {
    ollama = await OllamaUpstream.start();
    const dir = await made.tempDir("mf-mirror-access-");
    await writeFile(join(dir, "access.yml"), 'anonymous:\n  "ol/library/*": [pull]\n');
    const port = await freePort();
    const mirror = await made.serve(join(dir, "root"), [
      "--addr", `127.0.0.1:${port}`, "--public-url", `http://127.0.0.1:${port}`, "--access", join(dir, "access.yml"), "--mirror", `ol=${ollama.base}`,
    ]);
    const denied = ollama.image("secret/model", "latest", randomBytes(1000));
    const res = await fetch(`${mirror.base}/v2/ol/secret/model/blobs/${denied.model}`);
    assert.equal(res.status, 401);
    await res.arrayBuffer();
    assert.equal(ollama.fetchCount(denied.model), 0, "upstream was not asked");

    const allowed = ollama.image("library/model", "latest", randomBytes(1000));
    const login = await fetch(`${mirror.base}/token?service=mf-registry&scope=repository:ol/library/model:pull`);
    assert.equal(login.status, 200, await login.clone().text());
    const token = ((await login.json()) as { token: string }).token;
    const blob = await fetch(`${mirror.base}/v2/ol/library/model/blobs/${allowed.model}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(blob.status, 200);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), allowed.model);
    assert.equal(ollama.fetchCount(allowed.model), 1);
  });
});

