/** The wire conventions of runtime/server/http.ts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createdAt } from "../../runtime/server/http.js";

test("created_at: RFC 3339 UTC with nanoseconds, on the wall clock, never going back", () => {
  const stamps = Array.from({ length: 2000 }, () => createdAt());
  for (const s of stamps) assert.match(s, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  // the fixed-width strings sort as the times do
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i]! >= stamps[i - 1]!, `${stamps[i - 1]} then ${stamps[i]}`);
  assert.ok(Math.abs(Date.parse(createdAt()) - Date.now()) < 1000);
});
