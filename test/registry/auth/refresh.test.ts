/**
 * Tokens outlived by a transfer: the registry's clock jumps past the token's expiry in the middle of a
 * chunked push, and the client gets a new token and carries on (nothing restarts); and a client reuses
 * its token across requests instead of asking for one per request.
 */
import { strict as assert } from "node:assert";
import { rm } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { RegistryClient } from "../../../registry/client/index.js";
import { keyAuthenticator } from "../../../registry/client/auth.js";
import type { Challenge } from "../../../registry/client/http.js";
import type { LocalStore } from "../../../core/store.js";
import { buildModel, newStore } from "../client/helpers.js";
import { keysDir, makeKey, startAuthRegistry, type AuthRegistry, type Keyed } from "./helpers.js";

describe("token lifetime during transfers", () => {
  let dir: string;
  let alice: Keyed;
  let reg: AuthRegistry;
  let src: LocalStore;
  let dst: LocalStore;
  let offsetMs = 0;

  before(async () => {
    dir = await keysDir();
    alice = makeKey(dir, "alice");
    reg = await startAuthRegistry(`keys:\n  - key: ${alice.line}\n    access:\n      "team/*": [pull, push]\n`, {
      clock: () => Date.now() + offsetMs, tokenTtlS: 60,
    });
    src = await newStore("mf-refresh-src-");
    dst = await newStore("mf-refresh-dst-");
  });
  after(async () => {
    await reg?.close();
    for (const d of [dir, src?.root, dst?.root]) if (d) await rm(d, { recursive: true, force: true });
  });

  it("a push whose token expires mid-blob gets a new token and completes", async () => {
    const name = `${reg.host}/team/big:latest`;
    const built = await buildModel(src, dir, name, { bigLayerBytes: 2 * 1024 * 1024 });
    const challenges: Challenge[] = [];
    const inner = keyAuthenticator({ key: alice.key });
    const client = new RegistryClient({ chunkSize: 256 * 1024, retries: 0, authenticate: (c, s) => (challenges.push(c), inner(c, s)) });
    let jumped = false;
    let atJump = 0;
    try {
      const r = await client.push(src, name, {
        insecure: true,
        onProgress: (e) => {
          // after the first chunks of the big layer: four minutes pass on the registry (token TTL is 60 s)
          if (!jumped && e.completed !== undefined && e.total !== undefined && e.total > 1024 * 1024 && e.completed >= 512 * 1024) {
            jumped = true;
            atJump = challenges.length;
            offsetMs += 4 * 60_000;
          }
        },
      });
      assert.ok(jumped, "the clock jumped during the upload");
      assert.equal(r.digest, built.digest);
      const afterJump = challenges.length;
      assert.ok(atJump >= 1 && afterJump > atJump, `a new token was fetched after the jump (${atJump} before, ${afterJump} after)`);
      assert.equal((await client.pull(dst, name, { insecure: true })).digest, built.digest);
      assert.equal(challenges.length, afterJump, "the pull reuses the token it has (it covers pull)");
    } finally {
      await client.close();
    }
  });
});
