/**
 * Which models are loaded, and who may use them. A request asks for a lease on a model; the scheduler
 * loads on first use, gives each loaded model `numParallel` slots (parallel sequences of one context),
 * queues further requests in arrival order, answers 503 past `maxQueue` waiting requests, keeps an idle
 * model for its keep_alive (negative: forever; 0: unload as soon as it is idle), and holds at most
 * `maxLoaded` models, unloading the least recently used idle one first — never one in use.
 */
import { MfError, RuntimeError } from "../core/errors.js";
import { AbortedError } from "./engine/generation.js";
import type { Engine, EngineModel, LoadSpec } from "./engine/types.js";

export interface ModelRequest {
  /** identity of the weights (+ adapters): one runner per key */
  key: string;
  load: LoadSpec;
  /** for /api/ps: the name this request asked for (and the image's draft, if any) */
  info: { name: string; digest: string; details?: unknown; draft?: { digest: string } };
  /** milliseconds; Infinity = forever; undefined = the default */
  keepAliveMs?: number;
  signal?: AbortSignal;
}

export interface Lease {
  model: EngineModel;
  /** nanoseconds spent loading for this request (0 when the model was loaded already) */
  loadDuration: number;
  release(): void;
}

export interface LoadedInfo {
  key: string;
  name: string;
  digest: string;
  details?: unknown;
  sizeBytes: number;
  vramBytes: number;
  contextSize: number;
  /** CPU threads the model runs with */
  threads: number;
  /** ms since epoch; Infinity = never */
  expiresAt: number;
  active: number;
  /** the draft model running beside it (speculative decoding), with the drafted tokens accepted and rejected and the decodes that checked them */
  draft?: { digest: string; sizeBytes: number; maxTokens: number; accepted: number; rejected: number; decodes: number };
}

export interface SchedulerOptions {
  engine: Engine;
  maxLoaded: number;
  numParallel: number;
  maxQueue: number;
  defaultKeepAliveMs: number;
  now?: () => number;
  log?: (message: string) => void;
}

interface Runner {
  key: string;
  load: LoadSpec;
  /** the name it was first loaded for (in log lines) */
  info: ModelRequest["info"];
  /** every name it was asked for while loaded, in order (models that share weights share a runner) */
  names: Map<string, ModelRequest["info"]>;
  state: "loading" | "ready" | "unloading";
  model?: EngineModel;
  active: number;
  keepAliveMs: number;
  lastUsed: number;
  timer?: NodeJS.Timeout;
  /** nanoseconds of the load, reported to the first lease only */
  loadNs?: number;
}

interface Pending {
  req: ModelRequest;
  resolve: (l: Lease) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

/** `2 threads`, and when a count asked for was above the usable CPUs, that it was clamped */
function threadsNote(m: EngineModel): string {
  const n = `${m.threads} thread${m.threads === 1 ? "" : "s"}`;
  if (m.threadsAsked === undefined) return `${n}, the default`;
  return m.threadsAsked > m.threads ? `${n}: ${m.threadsAsked} asked for, clamped to the CPUs this process may use` : n;
}

const sameLoad = (a: LoadSpec, b: LoadSpec) =>
  a.contextSize === b.contextSize && a.batchSize === b.batchSize && a.threads === b.threads && a.slots === b.slots &&
  a.draft?.maxTokens === b.draft?.maxTokens;

export class Scheduler {
  private readonly runners = new Map<string, Runner>();
  private pending: Pending[] = [];
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
  }

  get numParallel(): number {
    return Math.max(1, this.opts.numParallel);
  }

  /** requests waiting for a slot or a load */
  get queued(): number {
    return this.pending.length;
  }

  /** Waits for a slot on the model (loading it if needed). */
  acquire(req: ModelRequest): Promise<Lease> {
    if (this.closed) return Promise.reject(new RuntimeError("SERVICE_UNAVAILABLE", "server is shutting down"));
    req.signal?.throwIfAborted();
    return new Promise<Lease>((resolve, reject) => {
      const p: Pending = { req, resolve, reject, cleanup: () => {} };
      const onAbort = () => {
        this.pending = this.pending.filter((x) => x !== p);
        reject(new AbortedError());
      };
      req.signal?.addEventListener("abort", onAbort, { once: true });
      p.cleanup = () => req.signal?.removeEventListener("abort", onAbort);
      this.pending.push(p);
      this.pump();
      if (this.pending.includes(p) && this.pending.length > this.opts.maxQueue) {
        this.pending = this.pending.filter((x) => x !== p);
        p.cleanup();
        reject(new RuntimeError("SERVICE_UNAVAILABLE", "server busy, please try again. maximum pending requests exceeded"));
      }
    });
  }

  /** Loaded models, for /api/ps: one entry per name asked for (a runner shared by names appears under each). */
  loaded(): LoadedInfo[] {
    const out: LoadedInfo[] = [];
    for (const r of this.runners.values()) {
      if (r.state !== "ready" || !r.model) continue;
      const from = r.active > 0 ? this.now() : r.lastUsed;
      for (const info of r.names.values()) {
        out.push({
          key: r.key,
          name: info.name,
          digest: info.digest,
          details: info.details,
          sizeBytes: r.model.sizeBytes,
          vramBytes: r.model.vramBytes,
          contextSize: r.model.contextSize,
          threads: r.model.threads,
          expiresAt: r.keepAliveMs === Infinity ? Infinity : from + r.keepAliveMs,
          active: r.active,
          ...(info.draft && r.model.draft ? { draft: { digest: info.draft.digest, sizeBytes: r.model.draft.sizeBytes, maxTokens: r.model.draft.maxTokens, ...r.model.draft.counts() } } : {}),
        });
      }
    }
    return out.sort((a, b) => b.expiresAt - a.expiresAt);
  }

  /** Unloads a model now if idle, else as soon as its last request ends. False if it is not loaded. */
  async expire(key: string): Promise<boolean> {
    const r = this.runners.get(key);
    if (!r || r.state === "unloading") return false;
    r.keepAliveMs = 0;
    if (r.state === "ready" && r.active === 0) await this.unload(r);
    return true;
  }

  /** Keeps an already loaded model for `keepAliveMs` more (an empty /api/generate). */
  touch(key: string, keepAliveMs: number | undefined): void {
    const r = this.runners.get(key);
    if (!r) return;
    r.keepAliveMs = keepAliveMs ?? this.opts.defaultKeepAliveMs;
    if (r.active === 0 && r.state === "ready") this.arm(r);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.splice(0)) {
      p.cleanup();
      p.reject(new RuntimeError("SERVICE_UNAVAILABLE", "server is shutting down"));
    }
    await Promise.all([...this.runners.values()].map((r) => this.unload(r)));
  }

  private pump(): void {
    if (this.closed) return;
    // a request that must wait for its model holds back the later ones for that model (first come, first served)
    const waiting = new Set<string>();
    for (const p of [...this.pending]) {
      const req = p.req;
      if (waiting.has(req.key)) continue;
      const r = this.runners.get(req.key);
      if (r) {
        if (r.state !== "ready" || !r.model) continue;
        if (!sameLoad(r.load, req.load)) {
          // different context options: reload once the model is idle
          waiting.add(req.key);
          if (r.active === 0) void this.unload(r).then(() => this.pump());
          continue;
        }
        if (r.active < r.model.slots) this.grant(p, r);
        continue;
      }
      if (this.runners.size < Math.max(1, this.opts.maxLoaded)) {
        this.startLoad(req);
        continue;
      }
      if ([...this.runners.values()].some((x) => x.state === "unloading")) continue;
      const idle = [...this.runners.values()]
        .filter((x) => x.state === "ready" && x.active === 0)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (idle) void this.unload(idle).then(() => this.pump());
    }
  }

  private grant(p: Pending, r: Runner): void {
    this.pending = this.pending.filter((x) => x !== p);
    p.cleanup();
    r.active++;
    r.names.set(p.req.info.name, p.req.info);
    if (r.timer) clearTimeout(r.timer);
    r.timer = undefined;
    r.keepAliveMs = p.req.keepAliveMs ?? this.opts.defaultKeepAliveMs;
    const loadNs = r.loadNs ?? 0;
    r.loadNs = undefined;
    let released = false;
    p.resolve({
      model: r.model!,
      loadDuration: loadNs,
      release: () => {
        if (released) return;
        released = true;
        this.release(r);
      },
    });
  }

  private release(r: Runner): void {
    r.active--;
    r.lastUsed = this.now();
    if (r.active === 0) {
      if (r.keepAliveMs <= 0 || this.closed) void this.unload(r).then(() => this.pump());
      else this.arm(r);
    }
    this.pump();
  }

  private arm(r: Runner): void {
    if (r.timer) clearTimeout(r.timer);
    r.timer = undefined;
    r.lastUsed = this.now();
    if (r.keepAliveMs === Infinity) return;
    if (r.keepAliveMs <= 0) {
      void this.unload(r).then(() => this.pump());
      return;
    }
    r.timer = setTimeout(() => {
      if (r.active === 0 && r.state === "ready") void this.unload(r).then(() => this.pump());
    }, Math.min(r.keepAliveMs, 2 ** 31 - 1));
    r.timer.unref();
  }

  private startLoad(req: ModelRequest): void {
    const r: Runner = {
      key: req.key,
      load: req.load,
      info: req.info,
      names: new Map([[req.info.name, req.info]]),
      state: "loading",
      active: 0,
      keepAliveMs: req.keepAliveMs ?? this.opts.defaultKeepAliveMs,
      lastUsed: this.now(),
    };
    this.runners.set(req.key, r);
    const t0 = process.hrtime.bigint();
    this.opts.log?.(`loading ${req.info.name} (ctx ${req.load.contextSize} × ${req.load.slots})`);
    this.opts.engine.load(req.load).then(
      async (model) => {
        if (this.closed || this.runners.get(r.key) !== r) {
          await model.dispose();
          return;
        }
        r.model = model;
        r.loadNs = Number(process.hrtime.bigint() - t0);
        const fa = model.flashAttention ? `; flash attention ${model.flashAttention}` : "";
        this.opts.log?.(`loaded ${req.info.name} in ${(r.loadNs / 1e9).toFixed(2)} s (ctx ${model.contextSize} × ${model.slots}, ${threadsNote(model)}${fa})`);
        r.state = "ready";
        this.pump();
        if (r.active === 0 && r.state === "ready") this.arm(r);
      },
      (e: unknown) => {
        this.runners.delete(r.key);
        const err = e instanceof MfError ? e : new RuntimeError("MODEL_LOAD_FAILED", `failed to load ${req.info.name}: ${(e as Error)?.message ?? e}`, { cause: e });
        for (const p of this.pending.filter((x) => x.req.key === r.key)) {
          this.pending = this.pending.filter((x) => x !== p);
          p.cleanup();
          p.reject(err);
        }
        this.pump();
      },
    );
  }

  private async unload(r: Runner): Promise<void> {
    if (r.state === "unloading" || this.runners.get(r.key) !== r) return;
    if (r.timer) clearTimeout(r.timer);
    r.timer = undefined;
    if (r.state === "loading") {
      this.runners.delete(r.key);
      return;
    }
    r.state = "unloading";
    this.opts.log?.(`unloading ${r.info.name}`);
    try {
      await r.model?.dispose();
    } finally {
      this.runners.delete(r.key);
    }
  }
}
