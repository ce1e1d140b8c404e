/** The step barrier that keeps generating sequences in one decode batch: who waits for whom, and for how long. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { StepBarrier } from "../../runtime/engine/step-barrier.js";

/** Resolves to whether `p` settled within `ms`. */
async function settles(p: Promise<unknown>, ms = 5): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await sleep(ms);
  return done;
}

describe("step barrier", () => {
  test("a sequence generating alone never waits", async () => {
    const b = new StepBarrier(1000);
    const a = {};
    b.received(a);
    assert.equal(await settles(b.arrive(a), 1), true);
    b.received(a);
    assert.equal(await settles(b.arrive(a), 1), true);
  });

  test("a sequence whose next token is asked for waits for one still decoding, and both go together", async () => {
    const b = new StepBarrier(1000);
    const [x, y] = [{}, {}];
    b.received(x);
    b.received(y);
    const yGo = b.arrive(y);
    // y is released by x's arrival only: x still holds its token, then asks for the next one
    assert.equal(await settles(yGo), false);
    const xGo = b.arrive(x);
    assert.equal(await settles(Promise.all([xGo, yGo])), true);
    // both now decode; x gets its token first and must wait for y's
    b.received(x);
    const xNext = b.arrive(x);
    assert.equal(await settles(xNext, 20), false, "y's token is in flight: x waits for it, however long the decode");
    b.received(y);
    assert.equal(await settles(xNext), false, "y's consumer holds its token for a moment");
    const yNext = b.arrive(y);
    assert.equal(await settles(Promise.all([xNext, yNext])), true);
  });

  test("a consumer that holds its token past the grace time is left behind, and joins the next step", async () => {
    const b = new StepBarrier(15);
    const [x, y] = [{}, {}];
    b.received(x);
    b.received(y); // y's client is slow: it does not ask for the next token
    const t0 = performance.now();
    await b.arrive(x);
    const waited = performance.now() - t0;
    assert.ok(waited >= 10, `x waited ${waited} ms for the slow consumer`);
    // y asks later, while x's token is decoding: y waits for x, then both go
    const yGo = b.arrive(y);
    assert.equal(await settles(yGo), false);
    b.received(x);
    const xGo = b.arrive(x);
    assert.equal(await settles(Promise.all([xGo, yGo])), true);
  });

  test("a sequence that stops releases the ones waiting for it", async () => {
    const b = new StepBarrier(1000);
    const [x, y, z] = [{}, {}, {}];
    for (const k of [x, y, z]) b.received(k);
    const xGo = b.arrive(x);
    const yGo = b.arrive(y);
    assert.equal(await settles(Promise.all([xGo, yGo])), false);
    b.leave(z); // finished, cancelled or failed
    assert.equal(await settles(Promise.all([xGo, yGo])), true);
    assert.equal(b.size, 2);
  });

  test("a sequence still evaluating its prompt is no member: nobody waits for it", async () => {
    const b = new StepBarrier(1000);
    const x = {};
    b.received(x);
    // y has started but has no token yet (its prompt is being decoded, which can take seconds)
    assert.equal(await settles(b.arrive(x)), true);
    assert.equal(b.size, 1);
  });
});
