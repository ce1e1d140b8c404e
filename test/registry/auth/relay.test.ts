/**
 * A hostile registry relaying a developer's signature (issue 15, item 3). `evil` answers `mf pull
 * --insecure evil/library/x` with a 401 whose realm is its own /token and whose scope it chose
 * (`repository:team-a/app:pull,push,delete`); `mf` signs that token request for evil's URL, and evil
 * replays it to the victim registry with `Host: evil` (and X-Forwarded-Host: evil). The victim verifies
 * signatures against its own `--public-url` only, so it refuses the relayed request, and the DELETE the
 * attacker wanted stays impossible. Without `--public-url`, `mf registry serve --access` does not start.
 */
import { strict as assert } from "node:assert";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { newStore, buildModel } from "../client/helpers.js";
import { freePort, spawnMfRegistry, tempDir, type SpawnedRegistry } from "../peers.js";
import { runMf } from "../run-mf.js";
import { clientWith, makeKey, type Keyed } from "./helpers.js";

const EVIL_SCOPE = "repository:team-a/app:pull,push,delete";

interface Relayed {
  url: string;
  authorization: string;
  victimStatus: number;
  victimBody: string;
  deleteStatus?: number;
}

describe("a token through a hostile registry's relay", () => {
  let dir: string;
  let alice: Keyed;
  let victim: SpawnedRegistry;
  let victimBase: string;
  let evil: Server;
  let evilHost: string;
  let manifestDigest: string;
  const relayed: Relayed[] = [];

  /** What evil does with a signed token request: replay it to the victim as if the victim were evil, then use any token it gets. */
  const relay = async (req: IncomingMessage, res: ServerResponse) => {
    const authorization = String(req.headers.authorization ?? "");
    const replay = await request(`${victimBase}${req.url}`, {
      headers: { host: evilHost, "x-forwarded-host": evilHost, "x-forwarded-proto": "http", ...(authorization ? { authorization } : {}) },
    });
    const body = await replay.body.text();
    const r: Relayed = { url: req.url!, authorization, victimStatus: replay.statusCode, victimBody: body };
    relayed.push(r);
    // the attack: with the victim's token, delete alice's model
    let token = "";
    try {
      token = (JSON.parse(body) as { token?: string }).token ?? "";
    } catch {
      /* no token */
    }
    const del = await request(`${victimBase}/v2/team-a/app/manifests/${manifestDigest}`, {
      method: "DELETE", headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    await del.body.dump();
    r.deleteStatus = del.statusCode;
    res.writeHead(replay.statusCode, { "content-type": "application/json" }).end(body);
  };

  before(async () => {
    dir = await tempDir("mf-auth-relay-");
    alice = makeKey(dir, "alice");
    const accessPath = join(dir, "access.yaml");
    await writeFile(accessPath, `keys:\n  - key: ${alice.line}\n    access:\n      "team-a/*": [pull, push, delete]\n`);
    const port = await freePort();
    victimBase = `http://127.0.0.1:${port}`;
    // --trust-proxy names the relay's own address: even forwarded headers a trusted proxy sends never
    // change what a signature must cover
    victim = await spawnMfRegistry(join(dir, "victim"), [
      "--addr", `127.0.0.1:${port}`, "--public-url", victimBase, "--access", accessPath, "--trust-proxy", "127.0.0.1",
    ]);

    const store = await newStore("mf-auth-relay-store-");
    await buildModel(store, dir, `127.0.0.1:${port}/team-a/app:v1`);
    const client = clientWith({ key: alice.key });
    try {
      manifestDigest = (await client.push(store, `127.0.0.1:${port}/team-a/app:v1`, { insecure: true })).digest;
    } finally {
      await client.close();
      await rm(store.root, { recursive: true, force: true });
    }

    evil = createServer((req, res) => {
      if (req.url?.startsWith("/token")) {
        relay(req, res).catch((e) => res.writeHead(500).end(String(e)));
        return;
      }
      res.writeHead(401, {
        "content-type": "application/json",
        "www-authenticate": `Bearer realm="http://${evilHost}/token",service="mf-registry",scope="${EVIL_SCOPE}"`,
      }).end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    evilHost = `127.0.0.1:${(evil.address() as AddressInfo).port}`;
  });

  after(async () => {
    evil?.close();
    victim?.child.kill("SIGTERM");
    if (victim) await victim.exited;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("mf registry serve --access without --public-url refuses to start and names the flag", async () => {
    const accessPath = join(dir, "access.yaml");
    const started = await spawnMfRegistry(join(dir, "no-public-url"), ["--access", accessPath]).then((r) => r, (e: Error) => e);
    if (!(started instanceof Error)) {
      started.child.kill("SIGKILL");
      await started.exited;
    }
    assert.ok(started instanceof Error, "the registry started with --access and no --public-url");
    assert.match(started.message, /mf: --access needs --public-url/);
  });

  it("--trust-proxy takes addresses and ranges only; anything else is a message, not a start", async () => {
    const started = await spawnMfRegistry(join(dir, "bad-proxy"), ["--trust-proxy", "10.0.0.0/8,nginx.internal"]).then((r) => r, (e: Error) => e);
    if (!(started instanceof Error)) {
      started.child.kill("SIGKILL");
      await started.exited;
    }
    assert.ok(started instanceof Error, "the registry started with --trust-proxy nginx.internal");
    assert.match(started.message, /mf: --trust-proxy "nginx\.internal": expected an IP address, a CIDR range \(10\.0\.0\.0\/8\) or loopback, linklocal, uniquelocal/);
    assert.doesNotMatch(started.message, /\n\s+at /);
  });

  it("the victim refuses the relayed signature, so the attacker's DELETE is refused and the model stays", async () => {
    const pull = await runMf(["pull", "--insecure", "-q", `${evilHost}/library/x:latest`], {
      MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_KEY: alice.path,
    });
    assert.equal(pull.code, 1);
    // mf did sign a token request for evil (that is what evil relays)
    assert.ok(relayed.length >= 1, `evil received no token request; mf said: ${pull.stderr}`);
    for (const r of relayed) {
      assert.match(r.authorization, /^[A-Za-z0-9+/]+={0,2}:[A-Za-z0-9+/]+={0,2}$/, "a signed request");
      assert.ok(new URLSearchParams(r.url.split("?")[1]).getAll("scope").includes(EVIL_SCOPE));
      assert.equal(r.victimStatus, 401, r.victimBody);
      assert.match(r.victimBody, /the signature does not match this request/);
      assert.notEqual(r.deleteStatus, 202, "the attacker deleted the model");
      assert.equal(r.deleteStatus, 401);
    }
    // alice's model is still there, and her own token requests (signed for the victim's URL) still work
    const client = clientWith({ key: alice.key });
    try {
      const m = await client.http.send({
        method: "HEAD", url: `${victimBase}/v2/team-a/app/manifests/v1`,
        headers: { accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" },
      });
      m.body.resume();
      assert.equal(m.status, 200);
      assert.equal(m.headers["docker-content-digest"], manifestDigest);
    } finally {
      await client.close();
    }
    // the victim's log says who was refused what, and holds no signature
    const log = victim.output();
    assert.match(log, /mf registry: denied token on team-a\/app for key:SHA256:\S+ \(alice@test\): the signature does not match this request/);
    for (const r of relayed) assert.ok(!log.includes(r.authorization.split(":")[1]!), "a signature reached the log");
  });
});
