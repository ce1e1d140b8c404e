/**
 * Resumable SHA-256 (sha256-state.ts) computed on a worker thread: the pure-TS hash runs at a tenth of
 * OpenSSL's speed, so on the S3 upload path it would otherwise block the event loop for every part and
 * add its time to the upload's; on the worker it overlaps with the network and with other requests.
 * Chunks are copied in batches of about 1 MiB; `snapshot()` resolves with the state (to save with the
 * upload) and the digest of everything given so far. A few threads (one per spare core, up to 4) serve
 * every hash of a process, each hash pinned to one; they start on first use and do not keep the process
 * alive.
 */
import { availableParallelism } from "node:os";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Sha256State } from "./sha256-state.js";
import type { ThreadReply, ThreadRequest } from "./sha256-thread.js";

const BATCH = 1 << 20;

function startThread(): Worker {
  if (extname(fileURLToPath(import.meta.url)) === ".js") return new Worker(new URL("./sha256-thread.js", import.meta.url));
  // Under tsx (tests, `node --import tsx`) a worker loads a .ts entry only once tsx's hooks are registered in it.
  const api = import.meta.resolve("tsx/esm/api");
  const entry = new URL("./sha256-thread.ts", import.meta.url).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`, { eval: true });
}

class HashThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private nextSeq = 1;
  private readonly waiting = new Map<number, { resolve(r: ThreadReply): void; reject(e: Error): void }>();

  private get thread(): Worker {
    if (this.worker) return this.worker;
    const w = startThread();
    w.unref();
    w.on("message", (r: ThreadReply) => {
      const p = this.waiting.get(r.seq);
      this.waiting.delete(r.seq);
      if (r.error) p?.reject(new Error(`sha256 worker: ${r.error}`));
      else p?.resolve(r);
    });
    const fail = (e: Error) => {
      this.worker = undefined;
      for (const p of this.waiting.values()) p.reject(e);
      this.waiting.clear();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`sha256 worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  post(m: ThreadRequest, transfer?: ArrayBuffer[]): void {
    this.thread.postMessage(m, transfer);
  }

  open(state?: Sha256State): number {
    const id = this.nextId++;
    this.post({ op: "open", id, state });
    return id;
  }

  ask(id: number): Promise<ThreadReply> {
    const seq = this.nextSeq++;
    const answer = new Promise<ThreadReply>((resolve, reject) => this.waiting.set(seq, { resolve, reject }));
    this.worker?.ref();
    this.post({ op: "save", id, seq });
    return answer.finally(() => {
      if (this.waiting.size === 0) this.worker?.unref();
    });
  }
}

const pool: HashThread[] = [];
let nextThread = 0;

function pickThread(): HashThread {
  if (pool.length === 0) {
    const n = Math.max(1, Math.min(4, availableParallelism() - 1));
    for (let i = 0; i < n; i++) pool.push(new HashThread());
  }
  return pool[nextThread++ % pool.length]!;
}

export class ThreadedSha256 {
  private readonly thread = pickThread();
  private readonly id: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;

  constructor(state?: Sha256State) {
    this.id = this.thread.open(state);
  }

  update(chunk: Uint8Array): void {
    if (this.closed) throw new Error("sha256: update after close");
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BATCH) this.flush();
  }

  /** The state and digest of everything given so far. */
  async snapshot(): Promise<{ state: Sha256State; hex: string }> {
    this.flush();
    const r = await this.thread.ask(this.id);
    return { state: r.state!, hex: r.hex! };
  }

  async save(): Promise<Sha256State> {
    return (await this.snapshot()).state;
  }

  async hex(): Promise<string> {
    return (await this.snapshot()).hex;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.thread.post({ op: "close", id: this.id });
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    // one copy into a buffer the worker then owns
    const data = new ArrayBuffer(this.pendingBytes);
    const view = new Uint8Array(data);
    let at = 0;
    for (const c of this.pending) {
      view.set(c, at);
      at += c.length;
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.thread.post({ op: "update", id: this.id, data }, [data]);
  }
}
