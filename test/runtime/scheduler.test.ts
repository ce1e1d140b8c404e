/** Scheduler behaviour on the fake engine: loading, slots, queue, keep_alive, LRU, failures, aborts. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isMfError } from "../../core/errors.js";
import { parseKeepAlive } from "../../runtime/options.js";
import { type ModelRequest, Scheduler } from "../../runtime/scheduler.js";
import { FakeEngine } from "./fake-engine.js";

function req(name: string, extra: Partial<ModelRequest> = {}): ModelRequest {
  return {
    key: name,
    load: { modelPath: `/fake/${name}`, adapters: [], contextSize: 128, slots: 2 },
    info: { name, digest: `sha256:${name}` },
    ...extra,
  };
}

function sched(engine: FakeEngine, o: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}): Scheduler {
  return new Scheduler({ engine, maxLoaded: 2, numParallel: 2, maxQueue: 10, defaultKeepAliveMs: 60_000, ...o });
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("scheduler", () => {
  test("loads on first use once, reports the load duration to the first lease only", async () => {
    const e = new FakeEngine({ loadMs: 5 });
    const s = sched(e);
    const [a, b] = await Promise.all([s.acquire(req("m")), s.acquire(req("m"))]);
    assert.deepEqual(e.events, ["load /fake/m"]);
    assert.ok(a.loadDuration > 0);
    assert.equal(b.loadDuration, 0);
    assert.equal(s.loaded().length, 1);
    assert.equal(s.loaded()[0]!.active, 2);
    a.release();
    b.release();
    await s.close();
    assert.deepEqual(e.events, ["load /fake/m", "unload /fake/m"]);
  });

  test("past the slots requests wait in order and are served as slots free up", async () => {
    const s = sched(new FakeEngine());
    const l1 = await s.acquire(req("m"));
    const l2 = await s.acquire(req("m"));
    const order: number[] = [];
    const w3 = s.acquire(req("m")).then((l) => (order.push(3), l));
    const w4 = s.acquire(req("m")).then((l) => (order.push(4), l));
    await tick();
    assert.deepEqual(order, []);
    l1.release();
    const l3 = await w3;
    await tick();
    assert.deepEqual(order, [3]);
    l2.release();
    const l4 = await w4;
    assert.deepEqual(order, [3, 4]);
    l3.release();
    l4.release();
    await s.close();
  });

  test("past maxQueue waiting requests the answer is 503", async () => {
    const s = sched(new FakeEngine(), { numParallel: 1, maxQueue: 1 });
    const one = { load: { modelPath: "/fake/m", adapters: [], contextSize: 128, slots: 1 } };
    const l1 = await s.acquire(req("m", one));
    const waiting = s.acquire(req("m", one));
    await assert.rejects(s.acquire(req("m", one)), (e) => isMfError(e) && e.status === 503);
    l1.release();
    (await waiting).release();
    await s.close();
  });

  test("keep_alive 0 unloads when the last lease ends; negative keeps forever", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    const l = await s.acquire(req("m", { keepAliveMs: 0 }));
    assert.equal(s.loaded().length, 1);
    l.release();
    await tick();
    assert.equal(s.loaded().length, 0);
    const f = await s.acquire(req("m", { keepAliveMs: parseKeepAlive(-1) }));
    f.release();
    assert.equal(s.loaded()[0]!.expiresAt, Infinity);
    await s.close();
  });

  test("an idle model unloads after its keep_alive", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    (await s.acquire(req("m", { keepAliveMs: 20 }))).release();
    assert.equal(s.loaded().length, 1);
    assert.ok(s.loaded()[0]!.expiresAt <= Date.now() + 20);
    while (s.loaded().length) await tick();
    assert.deepEqual(e.events, ["load /fake/m", "unload /fake/m"]);
    await s.close();
  });

  test("at maxLoaded the least recently used idle model is unloaded, never one in use", async () => {
    const e = new FakeEngine();
    const s = sched(e, { maxLoaded: 2 });
    const a = await s.acquire(req("a"));
    const b = await s.acquire(req("b"));
    b.release();
    const c = await s.acquire(req("c"));
    assert.deepEqual(e.events, ["load /fake/a", "load /fake/b", "unload /fake/b", "load /fake/c"]);
    // both loaded models in use: d waits until one is released
    let gotD = false;
    const d = s.acquire(req("d")).then((l) => ((gotD = true), l));
    await tick();
    assert.equal(gotD, false);
    c.release();
    (await d).release();
    assert.ok(e.events.includes("unload /fake/c"));
    assert.ok(!e.events.includes("unload /fake/a"));
    a.release();
    await s.close();
  });

  test("a failed load rejects its waiters with the reason and the scheduler carries on", async () => {
    const s = sched(new FakeEngine());
    const fails = [s.acquire(req("missing")), s.acquire(req("missing"))];
    for (const f of fails) await assert.rejects(f, /fake failure/);
    (await s.acquire(req("m"))).release();
    await s.close();
  });

  test("an aborted waiter leaves the queue", async () => {
    const s = sched(new FakeEngine(), { numParallel: 1 });
    const one = { load: { modelPath: "/fake/m", adapters: [], contextSize: 128, slots: 1 } };
    const l1 = await s.acquire(req("m", one));
    const ac = new AbortController();
    const w = s.acquire(req("m", { ...one, signal: ac.signal }));
    ac.abort();
    await assert.rejects(w, { name: "AbortError" });
    l1.release();
    (await s.acquire(req("m", one))).release();
    await s.close();
  });

  test("different context options reload the model once it is idle", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    (await s.acquire(req("m"))).release();
    const big = await s.acquire(req("m", { load: { modelPath: "/fake/m", adapters: [], contextSize: 512, slots: 2 } }));
    assert.equal(big.model.contextSize, 512);
    assert.deepEqual(e.events, ["load /fake/m", "unload /fake/m", "load /fake/m"]);
    big.release();
    await s.close();
  });

  test("a request waiting for a reload is not overtaken by later ones for the same model", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    const big = { load: { modelPath: "/fake/m", adapters: [], contextSize: 512, slots: 2 } };
    const l1 = await s.acquire(req("m"));
    const order: string[] = [];
    const wBig = s.acquire(req("m", big)).then((l) => (order.push("big"), l));
    // a slot is free at the old size, but the reload asked for first goes first
    const wSmall = s.acquire(req("m")).then((l) => (order.push("small"), l));
    await tick();
    assert.deepEqual(order, []);
    l1.release();
    const lBig = await wBig;
    assert.equal(lBig.model.contextSize, 512);
    await tick();
    assert.deepEqual(order, ["big"]);
    lBig.release();
    (await wSmall).release();
    assert.deepEqual(order, ["big", "small"]);
    assert.deepEqual(e.events, ["load /fake/m", "unload /fake/m", "load /fake/m", "unload /fake/m", "load /fake/m"]);
    await s.close();
  });

  test("names that share one model's weights share its load, and each name asked for is listed", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    const first = await s.acquire(req("chat", { key: "/blobs/gguf" }));
    assert.deepEqual(s.loaded().map((l) => l.name), ["chat"]);
    const second = await s.acquire(req("twin", { key: "/blobs/gguf" }));
    assert.deepEqual(e.events, ["load /fake/chat"], "one load for both names");
    assert.deepEqual(s.loaded().map((l) => [l.name, l.digest, l.active]), [["chat", "sha256:chat", 2], ["twin", "sha256:twin", 2]]);
    first.release();
    second.release();
    assert.equal(await s.expire("/blobs/gguf"), true);
    assert.deepEqual(s.loaded(), []);
    await s.close();
  });

  test("expire unloads an idle model", async () => {
    const e = new FakeEngine();
    const s = sched(e);
    (await s.acquire(req("m"))).release();
    assert.equal(await s.expire("m"), true);
    assert.equal(s.loaded().length, 0);
    assert.equal(await s.expire("m"), false);
    await s.close();
  });
});

describe("keep_alive parsing", () => {
  test("seconds, durations, negatives", () => {
    assert.equal(parseKeepAlive(undefined), undefined);
    assert.equal(parseKeepAlive(0), 0);
    assert.equal(parseKeepAlive(30), 30_000);
    assert.equal(parseKeepAlive("5m"), 300_000);
    assert.equal(parseKeepAlive("1h30m"), 5_400_000);
    assert.equal(parseKeepAlive("10"), 10_000);
    assert.equal(parseKeepAlive(-1), Infinity);
    assert.equal(parseKeepAlive("-1m"), Infinity);
    assert.throws(() => parseKeepAlive("soon"), /invalid keep_alive/);
  });
});
