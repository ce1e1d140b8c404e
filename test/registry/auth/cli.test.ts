/**
 * An organisation's registry end to end through the `mf` binary: `mf key`, `mf registry serve --access
 * --verbose`, `mf push`/`mf pull` signed with the key, `mf registry key add` + `mf login` for an API key,
 * `mf registry ls`/`rm` through the API; then the registry's captured log holds no secret, token or
 * signature.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { request } from "undici";
import { LocalStore } from "../../../core/store.js";
import { parsePrivateKey, publicKeyLine } from "../../../registry/protocol/keys.js";
import { signRequest, tokenUrl } from "../../../registry/protocol/auth.js";
import { buildModel } from "../client/helpers.js";
import { freePort, spawnMfRegistry, tempDir, type SpawnedRegistry } from "../peers.js";
import { runMf } from "../run-mf.js";

const mf = runMf;

describe("mf registry with keys, through the binary", () => {
  let dir: string;
  let accessPath: string;
  let reg: SpawnedRegistry;
  let host: string;
  let alice: Record<string, string>;
  let ci: Record<string, string>;
  const secrets: string[] = [];

  const waitForLog = async (re: RegExp, count: number) => {
    while ((reg.output().match(new RegExp(re, "g")) ?? []).length < count) await new Promise((r) => setTimeout(r, 25));
  };

  before(async () => {
    dir = await tempDir("mf-auth-cli-");
    alice = { MF_HOME: join(dir, "alice"), MF_MODELS: join(dir, "alice", "models") };
    ci = { MF_HOME: join(dir, "ci"), MF_MODELS: join(dir, "ci", "models") };
    await mkdir(ci.MF_HOME!, { recursive: true });
    accessPath = join(dir, "access.yaml");
    await writeFile(accessPath, 'anonymous:\n  "public/*": [pull]\n');
    const port = await freePort();
    reg = await spawnMfRegistry(join(dir, "registry"), ["--access", accessPath, "--verbose", "--addr", `127.0.0.1:${port}`, "--public-url", `http://127.0.0.1:${port}`]);
    host = new URL(reg.base).host;
  });
  after(async () => {
    reg?.child.kill("SIGTERM");
    if (reg) await reg.exited;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("mf key generates a key pair once and prints it in authorized_keys form", async () => {
    const first = await mf(["key"], alice);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ \S+\n$/);
    assert.match(first.stderr, /generated a new ed25519 key/);
    assert.equal((await stat(join(alice.MF_HOME!, "id_ed25519"))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(alice.MF_HOME!, "id_ed25519.pub"), "utf8"), first.stdout);
    const again = await mf(["key"], alice);
    assert.equal(again.stdout, first.stdout, "the same key on later runs");
    assert.equal(again.stderr, "");
    // an encrypted-looking or malformed key is a message, not a stack
    await writeFile(join(dir, "bad_key"), "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n");
    const bad = await mf(["key", "--key", join(dir, "bad_key")], alice);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^mf: .*bad_key is not an OpenSSH private key/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
    // a real passphrase-protected key (ssh-keygen's) is named as such
    const enc = join(dir, "encrypted_key");
    const gen = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-C", "enc", "-f", enc]);
    assert.equal(gen.status, 0, gen.stderr?.toString());
    const encrypted = await mf(["key", "--key", enc], alice);
    assert.equal(encrypted.code, 1);
    assert.match(encrypted.stderr, /^mf: .*encrypted_key is encrypted with a passphrase; mf needs an unencrypted ed25519 key/);
    assert.doesNotMatch(encrypted.stderr, /\n\s+at /);
    // a key path named explicitly (--key, MF_KEY) that does not exist is an error, not a new key
    const elsewhere = join(dir, "keys", "ci_ed25519");
    for (const [args, env, namedBy] of [
      [["key", "--key", elsewhere], alice, "--key"],
      [["key"], { ...alice, MF_KEY: elsewhere }, "MF_KEY"],
    ] as const) {
      const typo = await mf([...args], env);
      assert.equal(typo.code, 1);
      assert.equal(typo.stderr, `mf: no key at ${elsewhere} (named by ${namedBy}): check the path, or create a key there with \`mf key --new --key ${elsewhere}\`\n`);
      assert.equal(existsSync(elsewhere) || existsSync(join(dir, "keys")), false, "nothing created");
    }
    // --new creates it there (MF_KEY points elsewhere: not in MF_HOME), and never replaces one
    const viaEnv = await mf(["key", "--new"], { ...alice, MF_KEY: elsewhere });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.match(viaEnv.stderr, /generated a new ed25519 key/);
    assert.equal(await readFile(`${elsewhere}.pub`, "utf8"), viaEnv.stdout);
    assert.notEqual(viaEnv.stdout, first.stdout);
    assert.equal((await stat(elsewhere)).mode & 0o777, 0o600);
    const twice = await mf(["key", "--new", "--key", elsewhere], alice);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /^mf: a key already exists at .*ci_ed25519: `mf key --new` never replaces one\n$/);
    assert.equal(await readFile(`${elsewhere}.pub`, "utf8"), viaEnv.stdout);
    assert.equal((await mf(["key", "--key", elsewhere], alice)).stdout, viaEnv.stdout);

    await appendFile(accessPath, `keys:\n  - key: ${first.stdout.trim()}\n    access:\n      "team-a/*": [pull, push, delete]\n    catalog: true\n`);
    await waitForLog(/access file reloaded/, 1);
  });

  it("mf push and mf pull sign with the key; a client without credentials is refused", async () => {
    const name = `${host}/team-a/model:latest`;
    const built = await buildModel(new LocalStore(alice.MF_MODELS!), dir, name);
    const push = await mf(["push", name, "--insecure", "-q"], alice);
    assert.equal(push.code, 0, push.stderr);
    assert.equal(push.stdout.trim(), built.digest);
    const pull = await mf(["pull", name, "--insecure", "-q"], { ...alice, MF_MODELS: join(dir, "alice", "models2") });
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(pull.stdout.trim(), built.digest);
    const anon = await mf(["pull", name, "--insecure", "-q"], ci);
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /^mf: .*(authentication required|refused a token)/);
    // a mistyped key path is an error before any request, never an anonymous attempt or a new key
    const typo = join(dir, "alice", "id_ed25519-typo");
    for (const [args, env] of [
      [["pull", name, "--insecure", "-q", "--key", typo], alice],
      [["push", name, "--insecure", "-q"], { ...alice, MF_KEY: typo }],
    ] as const) {
      const r = await mf([...args], env);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, /^mf: no key at .*id_ed25519-typo \(named by (--key|MF_KEY)\): check the path/);
      assert.equal(existsSync(typo), false);
    }
    // mf build pulls a FROM base with the same key
    const ctx = join(dir, "child-ctx");
    await mkdir(ctx, { recursive: true });
    await writeFile(join(ctx, "Modelfile"), `FROM ${name}\nSYSTEM built on the team's model\n`);
    const build = await mf(["build", "-q", "--insecure", "-t", "local/child", ctx], { ...alice, MF_MODELS: join(dir, "alice", "models3") });
    assert.equal(build.code, 0, build.stderr);
    const anonBuild = await mf(["build", "-q", "--insecure", "-t", "local/child", ctx], ci);
    assert.equal(anonBuild.code, 1);
    assert.match(anonBuild.stderr, /^Modelfile:1:6: error: .*authentication required/);
  });

  it("mf registry key add + mf login give a CI machine pull access with an API key", async () => {
    const add = await mf(["registry", "key", "add", "ci", "--access", accessPath, "--allow", "team-a/*=pull"], alice);
    assert.equal(add.code, 0, add.stderr);
    const secret = add.stdout.trim();
    assert.match(secret, /^mfk_[A-Za-z0-9_-]{43}$/);
    secrets.push(secret);
    assert.ok(!(await readFile(accessPath, "utf8")).includes(secret), "only the hash is stored");
    await waitForLog(/access file reloaded/, 2);
    const login = await mf(["login", host, "--insecure"], ci, `${secret}\n`);
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await stat(join(ci.MF_HOME!, "config.json"))).mode & 0o777, 0o600);
    const pull = await mf(["pull", `${host}/team-a/model:latest`, "--insecure", "-q"], ci);
    assert.equal(pull.code, 0, pull.stderr);
    const push = await mf(["push", `${host}/team-a/model:latest`, "--insecure", "-q"], ci);
    assert.equal(push.code, 1, "the API key allows pull only");
    assert.match(push.stderr, /not allowed/);
    const list = await mf(["registry", "key", "list", "--access", accessPath], alice);
    assert.match(list.stdout, /apikey\s+ci\s+\S+\s+team-a\/\*=pull/);
    // revoked: the serving registry reloads the file and the stored key stops working
    const revoke = await mf(["registry", "key", "revoke", "ci", "--access", accessPath], alice);
    assert.equal(revoke.code, 0, revoke.stderr);
    await waitForLog(/access file reloaded/, 3);
    const revoked = await mf(["pull", `${host}/team-a/model:latest`, "--insecure", "-q"], ci);
    assert.equal(revoked.code, 1);
    assert.match(revoked.stderr, /^mf: .*refused a token for the API key stored by `mf login`: unknown API key/m);
    assert.doesNotMatch((await mf(["registry", "key", "list", "--access", accessPath], alice)).stdout, /apikey\s+ci/);
    assert.equal((await mf(["logout", host], ci)).code, 0);
    assert.equal((await mf(["pull", `${host}/team-a/model:latest`, "--insecure", "-q"], ci)).code, 1);
  });

  it("mf registry ls and rm work through the API with a token", async () => {
    const repos = await mf(["registry", "ls", host, "--insecure"], alice);
    assert.equal(repos.code, 0, repos.stderr);
    assert.deepEqual(repos.stdout.trim().split("\n"), ["team-a/model"]);
    const tags = await mf(["registry", "ls", `${host}/team-a/model`, "--insecure"], alice);
    assert.equal(tags.stdout.trim(), "latest");
    const rmTag = await mf(["registry", "rm", `${host}/team-a/model:latest`, "--insecure"], alice);
    assert.equal(rmTag.code, 0, rmTag.stderr);
    assert.equal((await mf(["registry", "ls", `${host}/team-a/model`, "--insecure"], alice)).stdout.trim(), "");
    const noCatalog = await mf(["registry", "ls", host, "--insecure"], ci);
    assert.equal(noCatalog.code, 1);
  });

  it("refused requests are logged with who, which action and which repository", async () => {
    const listed = /ssh\s+(SHA256:\S+) (\S+)/.exec((await mf(["registry", "key", "list", "--access", accessPath], alice)).stdout);
    assert.ok(listed, "alice's key is listed");
    const who = `key:${listed[1]} (${listed[2]})`; // fingerprint and the key's comment
    const log = reg.output();
    // anonymous (ci before `mf login`, and listing the catalog), an API key beyond its rights, a revoked API
    // key at the token endpoint
    assert.match(log, /^mf registry: denied pull on team-a\/model for anonymous: authentication required \(anonymous access does not allow this\)$/m);
    assert.match(log, /^mf registry: denied push on team-a\/model for apikey:ci: push on team-a\/model is not allowed for these credentials$/m);
    assert.match(log, /^mf registry: denied token on team-a\/model for an API key: unknown API key$/m);
    assert.match(log, /^mf registry: denied catalog for anonymous: /m);
    // a key that may not delete outside its namespace
    const rm = await mf(["registry", "rm", `${host}/team-b/other:v1`, "--insecure"], alice);
    assert.equal(rm.code, 1);
    await waitForLog(/denied delete on team-b\/other/, 1);
    assert.ok(reg.output().split("\n").includes(`mf registry: denied delete on team-b/other for ${who}: delete on team-b/other is not allowed for these credentials`));
  });

  it("an access file that stops parsing, or is emptied in place, keeps the last good policy and the log says so", async () => {
    const good = await readFile(accessPath, "utf8");
    await writeFile(accessPath, `${good}keys: [ this is not: valid`);
    await waitForLog(/access file not reloaded/, 1);
    assert.match(reg.output(), /mf registry: access file not reloaded: .*access\.yaml: not valid YAML: .*; the last good policy stays in force \(1 key, 0 API keys, anonymous rules\)\n/);
    assert.equal((await mf(["registry", "ls", host, "--insecure"], alice)).code, 0, "alice's key still works");
    await writeFile(accessPath, ""); // truncated in place, as `> access.yaml` leaves it
    await waitForLog(/access file not reloaded/, 2);
    assert.match(reg.output(), /access file not reloaded: .*access\.yaml is empty; an empty file never replaces an access policy that grants something; the last good policy stays in force \(1 key, 0 API keys, anonymous rules\)/);
    assert.equal((await mf(["registry", "ls", host, "--insecure"], alice)).code, 0, "alice's key still works");
    await writeFile(accessPath, good);
    await waitForLog(/access file reloaded/, 4);
  });

  it("the registry's log holds no API key, token, signature or signed-URL MAC", async () => {
    // one more request of each kind with values this test knows
    const key = parsePrivateKey(await readFile(join(alice.MF_HOME!, "id_ed25519")));
    const url = tokenUrl({ realm: `${reg.base}/token`, service: "mf-registry", scopes: ["repository:team-a/model:pull"] });
    const signature = signRequest(key, "GET", url);
    const t = await request(url, { headers: { authorization: signature } });
    const token = ((await t.body.json()) as { token: string }).token;
    const b = await request(`${reg.base}/token?scope=repository:team-a/model:pull`, { headers: { authorization: `Basic ${Buffer.from(`ci:${secrets[0]}`).toString("base64")}` } });
    await b.body.dump();
    const m = await request(`${reg.base}/v2/team-a/model/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    await m.body.dump();
    await waitForLog(/tags\/list/, 2);

    const log = reg.output();
    assert.match(log, /"url":"\/token\?/, "requests are logged");
    assert.match(log, /_mf\/blobs\/sha256:[0-9a-f]{64}\?expires=\d+&sig=%E2%80%A6/, "signed blob URLs are logged with the signature cut");
    for (const s of [...secrets, token, signature.split(":")[1]!, publicKeyLine(key).split(" ")[1]! + ":"]) {
      assert.ok(!log.includes(s), `the log contains ${s.slice(0, 12)}…`);
    }
    assert.doesNotMatch(log, /sig=(?!%E2%80%A6)/);
    assert.doesNotMatch(log, /\/blobs\/uploads\/[0-9a-f-]{36}\.[A-Za-z0-9_-]/, "upload-location MACs are cut");
    assert.doesNotMatch(log, /Bearer |Basic |authorization/i);
  });
});
