/** core/limit.ts: work over many items, a bounded number at a time. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { forEachLimit, mapLimit } from "../../core/limit.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("forEachLimit: every item once, never more than the limit at a time, started in order", async () => {
  const started: number[] = [];
  let running = 0;
  let most = 0;
  await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    started.push(n);
    running++;
    most = Math.max(most, running);
    await tick(n % 3);
    running--;
  });
  assert.deepEqual(started, [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(most, 3);
  assert.equal(running, 0);
});

test("forEachLimit: the first failure stops new items, waits for those under way, and is what it rejects with", async () => {
  const started: number[] = [];
  const finished: number[] = [];
  await assert.rejects(
    forEachLimit([1, 2, 3, 4, 5, 6], 2, async (n) => {
      started.push(n);
      if (n === 2) throw new Error("item 2 failed");
      await tick(5);
      if (n === 3) throw new Error("item 3 failed too");
      finished.push(n);
    }),
    /item 2 failed/,
  );
  // 2 fails at once and its worker takes nothing more; 1, under way, finishes before the rejection
  assert.deepEqual(started, [1, 2]);
  assert.deepEqual(finished, [1]);
});

test("forEachLimit: no items, and a limit below 1, still work", async () => {
  await forEachLimit([], 4, async () => assert.fail("no item"));
  const seen: string[] = [];
  await forEachLimit(new Set(["a", "b"]), 0, async (x) => void seen.push(x));
  assert.deepEqual(seen, ["a", "b"]);
});

test("mapLimit: the results in the items' order, whichever call finishes first", async () => {
  const out = await mapLimit([30, 0, 20, 10], 4, async (ms) => {
    await tick(ms);
    return `waited ${ms}`;
  });
  assert.deepEqual(out, ["waited 30", "waited 0", "waited 20", "waited 10"]);
});
