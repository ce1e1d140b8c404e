/**
 * The pull-on-demand logic alone (runtime/server/on-demand.ts) over a fake registry client and store: what
 * the end-to-end suite (test/e2e/pull-on-demand.test.ts) cannot make happen on cue, on a clock of the test's own:
 * the progress log's bound, a remembered failure's expiry, the cap on pulls at once, and --registry's
 * checks.
 */
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import type { FastifyBaseLogger } from "fastify";
import { RegistryError } from "../../core/errors.js";
import type { ProgressEvent } from "../../core/progress.js";
import { type ModelRef, parseRef, refKey } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import type { RegistryClient } from "../../registry/client/index.js";
import { RetryLater } from "../../runtime/server/http.js";
import { onDemandPulls, registryBase } from "../../runtime/server/on-demand.js";

interface Fake {
  lines: string[];
  pulls: string[];
  store: LocalStore;
  client: RegistryClient;
  log: FastifyBaseLogger;
}

/** A store holding what `pull` put there; a client whose pull runs `behaviour`. */
function fake(behaviour: (ref: ModelRef, onProgress: (e: ProgressEvent) => void) => Promise<void>): Fake {
  const have = new Set<string>();
  const lines: string[] = [];
  const pulls: string[] = [];
  const store = { findModel: async (ref: ModelRef) => (have.has(refKey(ref)) ? { ref } : undefined) } as unknown as LocalStore;
  const client = {
    pull: async (_s: LocalStore, ref: ModelRef, o: { onProgress: (e: ProgressEvent) => void }) => {
      pulls.push(refKey(ref));
      await behaviour(ref, o.onProgress);
      have.add(refKey(ref));
    },
  } as unknown as RegistryClient;
  const line = (_o: unknown, msg: string) => lines.push(msg);
  const log = { info: line, warn: line, error: line, debug: line } as unknown as FastifyBaseLogger;
  return { lines, pulls, store, client, log };
}

const REG = "http://reg.example:5000";
const ref = (s: string) => parseRef(`reg.example:5000/${s}`);

/** A clock that moves only when told: `now` for onDemandPulls, `tick(ms)` to move it. */
function clock(): { now: () => number; tick: (ms: number) => void } {
  let t = 0;
  return { now: () => t, tick: (ms) => void (t += ms) };
}

describe("pull on demand", () => {
  it("logs a pull's progress at most once per logEveryMs, however many chunks arrive", async () => {
    const c = clock();
    const f = fake(async (_ref, progress) => {
      // 20 s of transfer in 2000 chunks of 10 ms each
      for (let i = 1; i <= 2000; i++) {
        c.tick(10);
        progress({ status: "pulling abc", digest: "sha256:abc", total: 2000 << 20, completed: i << 20 });
      }
    });
    const od = onDemandPulls({ registry: REG, client: f.client, timeoutMs: 60_000, logEveryMs: 5_000, now: c.now })({ store: f.store, log: f.log });
    assert.equal(await od.ensure(ref("team/m:v1"), "reg.example:5000/team/m:v1"), true);
    const progress = f.lines.filter((l) => /^pulling \S+: \d+% of/.test(l));
    assert.deepEqual(progress, ["pulling reg.example:5000/team/m:v1: 25% of 2000.0 MiB", "pulling reg.example:5000/team/m:v1: 50% of 2000.0 MiB", "pulling reg.example:5000/team/m:v1: 75% of 2000.0 MiB", "pulling reg.example:5000/team/m:v1: 100% of 2000.0 MiB"]);
    assert.equal(f.lines.length, 6, f.lines.join("\n"));
    assert.match(f.lines[0]!, /^pulling reg\.example:5000\/team\/m:v1 from http:\/\/reg\.example:5000 on demand$/);
    assert.match(f.lines[5]!, /^pulled reg\.example:5000\/team\/m:v1 on demand/);
  });

  it("answers a failure again without asking the registry until failureTtlMs has passed, then asks again", async () => {
    const c = clock();
    const f = fake(async () => {
      throw new RegistryError("MANIFEST_UNKNOWN", "not found in the registry");
    });
    const od = onDemandPulls({ registry: REG, client: f.client, timeoutMs: 60_000, failureTtlMs: 10_000, now: c.now })({ store: f.store, log: f.log });
    const missing = (e: unknown) => (e as { status?: number }).status === 404 && /does not have it/.test((e as Error).message);
    await assert.rejects(od.ensure(ref("team/none:v1"), "n"), missing);
    c.tick(9_000);
    await assert.rejects(od.ensure(ref("team/none:v1"), "n"), missing);
    assert.equal(f.pulls.length, 1);
    c.tick(1_001);
    await assert.rejects(od.ensure(ref("team/none:v1"), "n"), missing);
    assert.equal(f.pulls.length, 2);
  });

  it("a registry that cannot be reached is a 503 with Retry-After, not a 500; a name of another host is not its to pull", async () => {
    const f = fake(async () => {
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5000"), { code: "ECONNREFUSED" });
    });
    const od = onDemandPulls({ registry: REG, client: f.client, timeoutMs: 60_000, failureTtlMs: 10_000 })({ store: f.store, log: f.log });
    await assert.rejects(od.ensure(ref("team/m:v1"), "m"), (e: unknown) => e instanceof RetryLater && e.status === 503 && e.retryAfterS > 0 && /ECONNREFUSED/.test(e.message));
    assert.equal(await od.ensure(parseRef("other.example/team/m:v1"), "x"), false);
    assert.equal(await od.ensure(parseRef("team/m:v1"), "x"), false, "a short name is registry.ollama.ai's");
    assert.equal(f.pulls.length, 1);
  });

  it("pulls at most maxPulls models at once: a request for another one gets a 503 meanwhile", async () => {
    let finish!: () => void;
    const held = new Promise<void>((r) => (finish = r));
    const f = fake(() => held);
    const od = onDemandPulls({ registry: REG, client: f.client, timeoutMs: 5, maxPulls: 1 })({ store: f.store, log: f.log });
    await assert.rejects(od.ensure(ref("team/a:v1"), "a"), (e: unknown) => e instanceof RetryLater && /being pulled/.test(e.message));
    await assert.rejects(od.ensure(ref("team/b:v1"), "b"), (e: unknown) => e instanceof RetryLater && /1 other pulls are running/.test(e.message));
    finish();
    await held;
    await new Promise((r) => setImmediate(r));
    assert.equal(await od.ensure(ref("team/a:v1"), "a"), true);
    assert.equal(await od.ensure(ref("team/b:v1"), "b"), true);
    assert.deepEqual(f.pulls, [refKey(ref("team/a:v1")), refKey(ref("team/b:v1"))]);
  });

  it("--registry takes a base URL only", () => {
    assert.equal(registryBase("https://models.example.com").host, "models.example.com");
    assert.throws(() => registryBase("ftp://x"), /use an http:\/\/ or https:\/\/ URL/);
    assert.throws(() => registryBase("models.example.com"), /use an http:\/\/ or https:\/\/ URL|not a URL/);
    assert.throws(() => registryBase("https://models.example.com/v2/"), /base URL only/);
    assert.throws(() => registryBase("https://user:secret@models.example.com"), /base URL only/);
  });
});
