/** The wire conventions of runtime/server/http.ts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { StreamBody, createdAt } from "../../runtime/server/http.js";

test("created_at: RFC 3339 UTC with nanoseconds, on the wall clock, never going back", () => {
  const stamps = Array.from({ length: 2000 }, () => createdAt());
  for (const s of stamps) assert.match(s, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  // the fixed-width strings sort as the times do
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i]! >= stamps[i - 1]!, `${stamps[i - 1]} then ${stamps[i]}`);
  assert.ok(Math.abs(Date.parse(createdAt()) - Date.now()) < 1000);
});

test("created_at: the same form and order across a change of second (the second's text is reused within it)", async () => {
  const toNext = 1000 - (Date.now() % 1000);
  await new Promise((r) => setTimeout(r, Math.max(0, toNext - 50)));
  const stamps: string[] = [];
  // each stamp with the wall clock read right after it (on a loaded machine the loop below may run for
  // over a second, so the stamps are not compared with the clock at its end)
  const clock: number[] = [];
  const stamp = () => {
    stamps.push(createdAt());
    clock.push(Date.now());
  };
  stamp();
  // stamps until the second has changed (at most 1.5 s: a loaded machine may wake the timer late)
  const until = Date.now() + 1500;
  while (stamps.at(-1)!.slice(0, 19) === stamps[0]!.slice(0, 19) && Date.now() < until) {
    stamp();
    if (stamps.length % 256 === 0) await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 100; i++) stamp();
  const seconds = new Set(stamps.map((s) => s.slice(0, 19)));
  assert.ok(seconds.size >= 2, `the stamps span a change of second: ${[...seconds].join(", ")}`);
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i]! >= stamps[i - 1]!, `${stamps[i - 1]} then ${stamps[i]}`);
  for (const [i, s] of stamps.entries()) assert.ok(Math.abs(Date.parse(s) - clock[i]!) < 1000, `${s} against the wall clock's ${new Date(clock[i]!).toISOString()}`);
});

/** A response body that records its calls. */
function sink() {
  const calls: string[] = [];
  return { calls, destroyed: false, write: (t: string) => calls.push(`write ${t}`), end: (t?: string) => calls.push(t === undefined ? "end" : `end ${t}`) };
}
const nextTurn = () => new Promise((r) => setImmediate(r));

test("a streamed body is written after the turn that produced it, what one turn produced in one write, in order", async () => {
  const s = sink();
  const body = new StreamBody(s);
  body.write("a\n");
  body.write("b\n");
  // the generation loop asks for its next token in this turn, before the socket write
  assert.deepEqual(s.calls, []);
  await nextTurn();
  assert.deepEqual(s.calls, ["write a\nb\n"]);
  body.write("c\n");
  await nextTurn();
  body.write("d\n");
  body.end('{"error":"x"}\n');
  assert.deepEqual(s.calls, ["write a\nb\n", "write c\n", "write d\n", 'end {"error":"x"}\n'], "the end comes after every line");
  body.write("late\n");
  await nextTurn();
  assert.equal(s.calls.length, 4, "nothing after the end");
});

test("a streamed body whose client has gone is not written", async () => {
  const s = sink();
  const body = new StreamBody(s);
  body.write("a\n");
  s.destroyed = true;
  await nextTurn();
  body.end();
  assert.deepEqual(s.calls, []);
});
