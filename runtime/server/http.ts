/**
 * The wire conventions of the Ollama API: errors as `{"error": "..."}` with the table's status, NDJSON
 * streams that turn a late error into a final `{"error"}` line, RFC 3339 timestamps with nanoseconds,
 * and an AbortSignal that fires when the client goes away.
 */
import type { FastifyBaseLogger, FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { MfError, RuntimeError, apiEnvelope, isMfError, toMfError } from "../../core/errors.js";
import { TemplateLimitError, isTemplateError } from "../../grammar/template/errors.js";

/** the wall clock in nanoseconds is the monotonic clock plus this offset, fixed once */
const EPOCH_OFFSET_NS = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** the last whole second `createdAt` formatted, and its text (a streamed answer stamps every token) */
let stampSecond = -1n;
let stampText = "";

/** `2024-05-01T12:00:00.123456789Z` (what Go's time.Time marshals to), never going back between calls. */
export function createdAt(): string {
  const ns = process.hrtime.bigint() + EPOCH_OFFSET_NS;
  const second = ns / 1_000_000_000n;
  if (second !== stampSecond) {
    stampSecond = second;
    stampText = new Date(Number(second) * 1000).toISOString().slice(0, 19);
  }
  return `${stampText}.${String(ns % 1_000_000_000n).padStart(9, "0")}Z`;
}

/** Any thrown value as the MfError the API answers with. */
export function apiError(err: unknown): MfError {
  // a template past its execution budget is the client's (or the model author's) doing: a 400
  if (err instanceof TemplateLimitError) return new RuntimeError("BAD_REQUEST", err.message);
  if (isTemplateError(err)) return new RuntimeError(err.phase === "parse" ? "BAD_REQUEST" : "INTERNAL", err.message);
  if (isMfError(err)) return err;
  const fe = err as FastifyError & { validation?: { keyword: string; params: Record<string, unknown>; instancePath: string; message?: string }[] };
  if (fe && Array.isArray(fe.validation)) {
    const v = fe.validation[0]!;
    if (v.keyword === "required") return new RuntimeError("BAD_REQUEST", `${String(v.params.missingProperty)} is required`);
    const field = v.instancePath.replace(/^\//, "").replace(/\//g, ".") || "body";
    return new RuntimeError("BAD_REQUEST", `invalid ${field}: ${v.message ?? "wrong type"}`);
  }
  if (fe && typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new RuntimeError(fe.statusCode === 413 ? "BAD_REQUEST" : "BAD_REQUEST", fe.message);
  }
  if (err instanceof SyntaxError) return new RuntimeError("BAD_REQUEST", `invalid JSON: ${err.message}`);
  return toMfError(err);
}

/**
 * A 503 that tells the client when to come back (`Retry-After`, in whole seconds): e.g. a model still
 * being pulled on demand. Every API's error handler sends the header with its own error body.
 */
export class RetryLater extends RuntimeError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super("SERVICE_UNAVAILABLE", message);
  }
}

/** Sets `Retry-After` when the error says when to retry. */
export function setRetryAfter(reply: FastifyReply, err: unknown): void {
  if (err instanceof RetryLater) reply.header("retry-after", String(Math.max(1, Math.ceil(err.retryAfterS))));
}

export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  const e = apiError(err);
  const status = fastifyStatus(err) ?? e.status;
  setRetryAfter(reply, err);
  return reply.code(status).type("application/json; charset=utf-8").send(apiEnvelope(e));
}

/** A server's fault (5xx) at error level with its stack; a client's (4xx) at info, in one line. */
export function logFailure(log: FastifyBaseLogger, err: unknown): void {
  const e = apiError(err);
  const status = fastifyStatus(err) ?? e.status;
  if (status >= 500 && !(err instanceof RetryLater)) log.error({ err }, "request failed");
  else log.info({ statusCode: status, error: e.message }, "request refused");
}

function fastifyStatus(err: unknown): number | undefined {
  const s = (err as { statusCode?: number })?.statusCode;
  return !isMfError(err) && typeof s === "number" && s === 413 ? 413 : undefined;
}

/** Aborts when the client closes the connection before the answer is complete. */
export function clientSignal(req: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  req.raw.on("aborted", () => ac.abort());
  return ac.signal;
}

/** What StreamBody writes to: a ServerResponse. */
export interface BodySink {
  readonly destroyed: boolean;
  write(text: string): unknown;
  end(text?: string): unknown;
}

/** The parts of node's ServerResponse that `chunkSocket` reads: its own fields, checked before use. */
interface ResponseState {
  socket?: (Socket & { _httpMessage?: unknown }) | null;
  chunkedEncoding?: unknown;
  _headerSent?: unknown;
  _hasBody?: unknown;
  outputData?: unknown;
  writableCorked?: number;
}

/**
 * The socket a chunk of `sink`'s body may be written to directly, framed here (`SIZE\r\nTEXT\r\n`):
 * node's `write` on a chunked response makes four writes to the socket (size, CRLF, text, CRLF), corks it
 * and uncorks it on the next tick: more JavaScript per token than the one write made here. Only when nothing of this
 * response waits in node's own buffer, its head has gone out, and the socket is this response's (not a
 * pipelined request's before it); otherwise undefined, and `sink.write` does it. `end` still goes through
 * node, which writes the last chunk and keeps the connection's bookkeeping.
 */
function chunkSocket(sink: BodySink): Socket | undefined {
  if (!(sink instanceof ServerResponse)) return undefined;
  const res = sink as unknown as ResponseState;
  const socket = res.socket;
  const ours =
    socket != null &&
    socket._httpMessage === sink &&
    res.chunkedEncoding === true &&
    res._headerSent === true &&
    res._hasBody === true &&
    Array.isArray(res.outputData) &&
    res.outputData.length === 0 &&
    res.writableCorked === 0 &&
    !socket.destroyed;
  return ours ? socket : undefined;
}

/**
 * The body of a streamed answer, written after the turn of the event loop that produced it
 * (`setImmediate`), and what one turn produced in one write. A token's text is produced where the
 * generation loop receives the token. Where the engine was asked for the next token before this one was
 * handed out (the read-ahead, with a CPU beside the decode's threads), that step's `setImmediate`
 * (step-batch.ts) or node-llama-cpp's queued decode comes first, so the socket write, a system call that
 * on loopback also runs the client's side of TCP, is made while the next token decodes. Where the decode's
 * threads fill the CPUs, the step is asked for after this text, and its `setImmediate` runs after this
 * write: flushing the step in a microtask instead, so that its decode started before the write, measured
 * the same on 2 cores at 2 threads (1.01x, 21 rounds of 64 tokens, per-round spread 0.87-1.15x).
 * `end` writes what is pending first.
 */
export class StreamBody {
  private pending: string[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private ended = false;

  constructor(private readonly sink: BodySink) {}

  write(text: string): void {
    if (this.ended) return;
    this.pending.push(text);
    this.scheduled ??= setImmediate(() => {
      this.scheduled = undefined;
      this.flush();
    });
  }

  /** Writes what is pending now. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    if (this.sink.destroyed) return;
    const socket = chunkSocket(this.sink);
    if (socket) socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
    else this.sink.write(text);
  }

  /** Writes what is pending, then `last` (when given), and ends the body. */
  end(last?: string): void {
    if (this.ended) return;
    this.flush();
    this.ended = true;
    if (this.sink.destroyed) return;
    if (last === undefined) this.sink.end();
    else this.sink.end(last);
  }
}

/**
 * An NDJSON answer written to the socket (through StreamBody). Nothing is sent until the first `write`,
 * so an error before it still gets its status; after it, `fail` writes a last `{"error"}` line.
 */
export class NdjsonStream {
  started = false;
  private body: StreamBody | undefined;

  constructor(private readonly reply: FastifyReply) {}

  write(obj: unknown): void {
    if (!this.body) {
      this.started = true;
      this.reply.hijack();
      const headers = { ...this.reply.getHeaders(), "content-type": "application/x-ndjson" };
      this.reply.raw.writeHead(200, headers as Record<string, string>);
      this.body = new StreamBody(this.reply.raw);
    }
    this.body.write(JSON.stringify(obj) + "\n");
  }

  end(): void {
    this.body?.end();
  }

  /** After the first line: the error as a last line (and in the log). Before: rethrown for the error handler. */
  fail(err: unknown): void {
    if (!this.body) throw err;
    logFailure(this.reply.log, err);
    this.body.end(JSON.stringify(apiEnvelope(apiError(err))) + "\n");
  }
}

/** Runs a streamed handler: each event a line, or (stream: false) only the last event. */
export async function streamOrLast<T>(
  reply: FastifyReply,
  stream: boolean,
  run: (emit: (e: T) => void) => Promise<void>,
): Promise<T | undefined> {
  if (!stream) {
    let last: T | undefined;
    await run((e) => (last = e));
    return last;
  }
  const out = new NdjsonStream(reply);
  try {
    await run((e) => out.write(e));
    out.end();
  } catch (e) {
    out.fail(e);
  }
  return undefined;
}
