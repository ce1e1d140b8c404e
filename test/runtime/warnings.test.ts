/** runtime/server/warnings.ts alone (the HTTP side is in bad-input.test.ts): memory, line length, rate. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WarnOnce } from "../../runtime/server/warnings.js";

test("each warning once; what is remembered is capped, lines are cut, a minute holds a few lines and the rest are counted", () => {
  const lines: string[] = [];
  let now = 0;
  const w = new WarnOnce((l) => lines.push(l), { capacity: 100, maxLength: 50, perMinute: 5, now: () => now });
  w.warn("a");
  w.warn("a");
  assert.deepEqual(lines, ["a"]);
  for (let i = 0; i < 10_000; i++) w.warn(`name ${i} ${"z".repeat(1000)}`);
  assert.equal(w.size, 100);
  assert.equal(lines.length, 5);
  assert.ok(lines.every((l) => l.length <= 51));
  now += 60_000;
  w.warn("b");
  assert.equal(lines.at(-1), "b (and 9996 other warnings not logged)");
  // "a" was forgotten long ago: it may be said again
  w.warn("a");
  assert.equal(lines.at(-1), "a");
});
