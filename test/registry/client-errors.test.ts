/**
 * Clear errors for clients, through the real `mf` binary against real servers on 127.0.0.1: a plain-HTTP
 * registry reached without `--insecure`, a 403 on a blob HEAD (no body to explain it), `mf login` with a
 * key the registry does not know, and `mf registry serve` on a port already taken.
 */
import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalStore } from "../../core/store.js";
import { addApiKey } from "../../registry/server/access-edit.js";
import { makeKey, startAuthRegistry, type AuthRegistry, type Keyed } from "./auth/helpers.js";
import { buildModel } from "./client/helpers.js";
import { startInProcess, tempDir, type InProcessRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";

/** No stack, no raw OpenSSL or errno text: one `mf: …` line a user can act on. */
function assertClear(stderr: string): void {
  assert.match(stderr, /^mf: /m);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  assert.doesNotMatch(stderr, /wrong version number|ssl3_get_record|tls_validate_record_header|EADDRINUSE|: registry answered 40\d/);
}

describe("clear errors for clients, through the binary", () => {
  let dir: string;
  let plain: InProcessRegistry;
  let keyed: AuthRegistry;
  let pusher: Keyed;
  let ciKey: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await tempDir("mf-client-errors-");
    env = { MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models") };
    plain = await startInProcess();
    pusher = makeKey(dir, "pusher");
    // a key that may push but not pull (a CI that only publishes), and a pull-only API key
    const yaml = `keys:\n  - key: ${pusher.line}\n    access:\n      "team-a/*": [push]\n`;
    const withApiKey = addApiKey(yaml, "ci", { "team-a/*": ["pull"] });
    ciKey = withApiKey.secret;
    keyed = await startAuthRegistry(withApiKey.text);
  });
  after(async () => {
    await plain?.close();
    await keyed?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("mf pull and mf push to a plain-HTTP registry without --insecure say so and suggest --insecure", async () => {
    const host = new URL(plain.base).host;
    const name = `${host}/team/model:v1`;
    const built = await buildModel(new LocalStore(env.MF_MODELS!), dir, name);
    for (const args of [["pull", name], ["push", name]]) {
      const r = await runMf(args, env);
      assert.equal(r.code, 1, `mf ${args[0]}: ${r.stderr}`);
      assertClear(r.stderr);
      assert.match(r.stderr, new RegExp(`https://${host.replace(/\./g, "\\.")} does not speak HTTPS .*pass --insecure`), r.stderr);
    }
    // and with --insecure it works
    const push = await runMf(["push", name, "--insecure", "-q"], env);
    assert.equal(push.code, 0, push.stderr);
    assert.equal(push.stdout.trim(), built.digest);
  });

  it("a 403 on a blob HEAD names the action and the repository that were refused", async () => {
    const name = `${keyed.host}/team-a/model:v1`;
    await buildModel(new LocalStore(env.MF_MODELS!), dir, name);
    const r = await runMf(["push", name, "--insecure", "--key", pusher.path], env);
    assert.equal(r.code, 1, r.stderr);
    assertClear(r.stderr);
    assert.match(r.stderr, /HEAD http:\/\/\S+\/v2\/team-a\/model\/blobs\/sha256:[0-9a-f]{64}: pull on team-a\/model is not allowed for these credentials \(the registry answered 403\)/, r.stderr);
  });

  it("mf login checks the key with the registry: a bogus key is refused and not stored; a real one is", async () => {
    const home = { ...env, MF_HOME: join(dir, "login-home") };
    const config = join(home.MF_HOME, "config.json");
    const bogus = await runMf(["login", keyed.host, "--insecure", "--api-key", "mfk_bogus"], home);
    assert.equal(bogus.code, 1, bogus.stderr);
    assertClear(bogus.stderr);
    assert.match(bogus.stderr, new RegExp(`${keyed.host} refused a token for this API key: unknown API key; the key was not stored`), bogus.stderr);
    assert.equal(existsSync(config), false, "nothing stored");
    // without --insecure against plain HTTP: the same advice as push and pull, nothing stored
    const tls = await runMf(["login", keyed.host], home, `${ciKey}\n`);
    assert.equal(tls.code, 1, tls.stderr);
    assertClear(tls.stderr);
    assert.match(tls.stderr, /does not speak HTTPS .*pass --insecure.*the key was not stored/);
    assert.equal(existsSync(config), false, "nothing stored");

    const good = await runMf(["login", keyed.host, "--insecure"], home, `${ciKey}\n`);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stderr, new RegExp(`${keyed.host} accepted the API key; stored it`));
    const stored = JSON.parse(await readFile(config, "utf8")) as { auths: Record<string, { apikey: string }> };
    assert.equal(stored.auths[keyed.host]?.apikey, ciKey);

    // a registry that asks for no credentials: stored, and said that it could not be checked
    const open = await runMf(["login", new URL(plain.base).host, "--insecure", "--api-key", "mfk_anything"], home);
    assert.equal(open.code, 0, open.stderr);
    assert.match(open.stderr, /asks for no credentials, so the key could not be checked/);
  });

  it("mf registry serve on a busy port (or an address not of this machine) says which address and what to do", async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runMf(["registry", "serve", "--root", join(dir, "busy-root"), "--addr", `127.0.0.1:${port}`]);
      assert.equal(r.code, 1, r.stderr);
      assertClear(r.stderr);
      assert.match(r.stderr, new RegExp(`^mf: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use .*--addr HOST:PORT`));
    } finally {
      await new Promise((r) => busy.close(r));
    }
    // an address this machine does not have (TEST-NET-1), a name that does not resolve
    for (const [addr, why] of [["192.0.2.1:0", "192\\.0\\.2\\.1 is not an address of this machine"], ["nonexistent.invalid:0", "nonexistent\\.invalid does not resolve to an address"]]) {
      const r = await runMf(["registry", "serve", "--root", join(dir, "busy-root"), "--addr", addr!]);
      assert.equal(r.code, 1, r.stderr);
      assertClear(r.stderr);
      assert.match(r.stderr, new RegExp(`^mf: cannot listen on ${addr!.replace(/\./g, "\\.")}: ${why}; .*--addr HOST:PORT`));
    }
  });
});
