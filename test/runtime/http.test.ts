/** The wire conventions of runtime/server/http.ts. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { type AddressInfo, type Socket, connect } from "node:net";
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

/** A server whose every answer is `parts`, one StreamBody write per turn, then the end; the socket writes counted. */
async function streamingServer(parts: readonly string[]) {
  const writes: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const body = new StreamBody(res);
    let i = 0;
    const next = () => {
      if (i === parts.length) return body.end();
      body.write(parts[i++]!);
      setTimeout(next, 1);
    };
    next();
  });
  server.on("connection", (socket: Socket) => {
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      writes.push(String(chunk));
      return write(chunk, ...rest);
    }) as typeof socket.write;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { port, writes, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** What arrives on one connection until `done` says the bytes are all there. */
function rawExchange(port: number, request: string, done: (bytes: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request));
    let got = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (done(got)) {
        socket.destroy();
        resolve(got);
      }
    });
    socket.on("error", reject);
  });
}

/** The bodies of the chunked responses in `bytes`, in order (each decoded by its chunk sizes, in bytes). */
function chunkedBodies(bytes: Buffer): string[] {
  const bodies: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    const headEnd = bytes.indexOf("\r\n\r\n", at);
    assert.ok(headEnd > 0, "a response head");
    assert.match(bytes.subarray(at, headEnd).toString("latin1"), /^HTTP\/1\.1 200 OK[\s\S]*\r\ntransfer-encoding: chunked/i);
    at = headEnd + 4;
    const body: Buffer[] = [];
    for (;;) {
      const lineEnd = bytes.indexOf("\r\n", at);
      const size = parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
      assert.ok(Number.isInteger(size), `a chunk size at byte ${at}`);
      at = lineEnd + 2;
      if (size === 0) {
        assert.equal(bytes.subarray(at, at + 2).toString("latin1"), "\r\n", "the last chunk ends the body");
        at += 2;
        break;
      }
      body.push(bytes.subarray(at, at + size));
      assert.equal(bytes.subarray(at + size, at + size + 2).toString("latin1"), "\r\n", "a chunk ends where its size says");
      at += size + 2;
    }
    bodies.push(Buffer.concat(body).toString("utf8"));
  }
  return bodies;
}

const endsWithLastChunk = (n: number) => (b: Buffer) => b.toString("latin1").split("\r\n0\r\n\r\n").length - 1 === n;

test("a streamed body over HTTP: valid chunked framing by bytes (not characters), one socket write a token, and the connection kept for the next request", async () => {
  const parts = ['{"response":"Grüße"}\n', '{"response":"日本"}\n', '{"response":"🙂"}\n', '{"response":"ok"}\n'];
  const s = await streamingServer(parts);
  try {
    const request = `POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`;
    // two requests, one after the other on the same connection: the first answer's end left it usable
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect(s.port, "127.0.0.1", () => socket.write(request));
      let got = Buffer.alloc(0);
      let sentSecond = false;
      socket.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (!sentSecond && endsWithLastChunk(1)(got)) {
          sentSecond = true;
          socket.write(request);
        }
        if (endsWithLastChunk(2)(got)) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on("error", reject);
    });
    assert.deepEqual(chunkedBodies(bytes), [parts.join(""), parts.join("")]);
    // after the head and the first chunk (node's own write), each token is one write of its framed chunk
    const framed = s.writes.filter((w) => parts.some((p) => w === `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`));
    assert.equal(framed.length, 2 * (parts.length - 1), `one framed write a token after the first: ${JSON.stringify(s.writes)}`);
  } finally {
    await s.close();
  }
});

test("a streamed body over HTTP: pipelined requests get whole answers, in order", async () => {
  const parts = ["a\n", "bb\n", "ccc\n", "dddd\n"];
  const s = await streamingServer(parts);
  try {
    const request = `POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`;
    // the second answer streams while the first still does: node holds it back until the first ends
    const bytes = await rawExchange(s.port, request + request + request, endsWithLastChunk(3));
    assert.deepEqual(chunkedBodies(bytes), [parts.join(""), parts.join(""), parts.join("")]);
  } finally {
    await s.close();
  }
});
