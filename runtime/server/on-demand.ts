/**
 * Pull on demand (`mf serve --registry URL`): a request naming a model under that registry's host that the
 * store lacks pulls it first, through the same registry client as `/api/pull` (resumable, verified,
 * manifest last), then goes on. The CLI builds this (`onDemandPulls`) and hands it to
 * createRuntimeServer; the runtime reads no env or argv itself.
 *
 * - One pull per model at a time: concurrent requests for it wait on the same pull (single flight).
 * - A request waits up to `timeoutMs`; then it gets a 503 with `Retry-After` while the pull goes on in
 *   the background, and a later request finds it done or waits on it again.
 * - A failed pull is remembered for `failureTtlMs`: requests meanwhile get the same answer (a 404 for a
 *   name the registry lacks, a 403 for a refusal, a 503 otherwise) without asking the registry again.
 * - At most `maxPulls` models are pulled at once; a request for another one gets a 503 meanwhile.
 * - Progress goes to the log: a line when a pull starts, at most one every `logEveryMs` while it runs,
 *   and one when it ends.
 */
import type { FastifyBaseLogger } from "fastify";
import { MfError, RuntimeError, isMfError } from "../../core/errors.js";
import type { ProgressEvent } from "../../core/progress.js";
import { type ModelRef, displayRef, refKey } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import type { RegistryClient } from "../../registry/client/index.js";
import { RetryLater } from "./http.js";

/** What the model resolver asks when the store lacks a model. */
export interface OnDemand {
  /**
   * Makes `ref` local by pulling it, when it names a model under the registry's host: resolves true once
   * it is in the store, false for a name of another host (not this one's to pull). Throws the error a
   * client should get when the pull failed or is still running past the timeout.
   */
  ensure(ref: ModelRef, name: string): Promise<boolean>;
  /** Aborts the pulls still running (the server is closing). */
  close(): void;
}

export interface OnDemandOptions {
  /** the registry's base URL, `http(s)://host[:port]` */
  registry: string;
  client: RegistryClient;
  /** how long a request waits for its pull before a 503 */
  timeoutMs: number;
  /** how long a failed pull's answer is given again without asking the registry (default 10 s) */
  failureTtlMs?: number;
  /** models pulled at once (default 4) */
  maxPulls?: number;
  /** the least time between two progress lines of one pull (default 5 s) */
  logEveryMs?: number;
  /** the clock, in ms (default Date.now) */
  now?: () => number;
}

/** The hook createRuntimeServer takes: given the server's store and logger, the OnDemand it consults. */
export type PullOnDemand = (deps: { store: LocalStore; log: FastifyBaseLogger }) => OnDemand;

interface Running {
  promise: Promise<void>;
  startedAt: number;
  /** bytes done and expected so far, over the layers seen */
  completed: number;
  total: number;
  waiting: number;
}

interface Failure {
  error: MfError;
  until: number;
}

const MAX_FAILURES = 256;

/** The registry's base URL, checked: `http(s)://host[:port]` without a path. */
export function registryBase(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MfError("BAD_REQUEST", `--registry ${url}: not a URL (use http(s)://host[:port])`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new MfError("BAD_REQUEST", `--registry ${url}: use an http:// or https:// URL`);
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username || u.password) {
    throw new MfError("BAD_REQUEST", `--registry ${url}: give the registry's base URL only, http(s)://host[:port] (credentials come from \`mf login\` or the ssh key)`);
  }
  return u;
}

export function onDemandPulls(o: OnDemandOptions): PullOnDemand {
  const base = registryBase(o.registry);
  const host = base.host.toLowerCase();
  const where = `${base.protocol}//${base.host}`;
  const insecure = base.protocol === "http:";
  const failureTtlMs = o.failureTtlMs ?? 10_000;
  const maxPulls = o.maxPulls ?? 4;
  const logEveryMs = o.logEveryMs ?? 5_000;
  const now = o.now ?? Date.now;

  return ({ store, log }) => {
    const running = new Map<string, Running>();
    const failures = new Map<string, Failure>();
    const stop = new AbortController();

    const remember = (key: string, error: MfError) => {
      failures.delete(key);
      failures.set(key, { error, until: now() + failureTtlMs });
      while (failures.size > MAX_FAILURES) failures.delete(failures.keys().next().value!);
    };

    const start = (key: string, ref: ModelRef): Running => {
      const shown = displayRef(ref);
      const r: Running = { promise: Promise.resolve(), startedAt: now(), completed: 0, total: 0, waiting: 0 };
      const layers = new Map<string, { completed: number; total: number }>();
      let lastLog = r.startedAt;
      const onProgress = (e: ProgressEvent) => {
        if (!e.digest || e.total === undefined) return;
        layers.set(e.digest, { completed: e.completed ?? 0, total: e.total });
        r.completed = 0;
        r.total = 0;
        for (const l of layers.values()) {
          r.completed += l.completed;
          r.total += l.total;
        }
        const at = now();
        if (at - lastLog < logEveryMs) return;
        lastLog = at;
        log.info({ model: shown, completed: r.completed, total: r.total }, `pulling ${shown}: ${percent(r)} of ${mib(r.total)}`);
      };
      log.info({ model: shown, registry: where }, `pulling ${shown} from ${where} on demand`);
      r.promise = (async () => {
        try {
          if (!(await store.findModel(ref))) await o.client.pull(store, ref, { insecure, signal: stop.signal, onProgress });
          log.info({ model: shown, seconds: (now() - r.startedAt) / 1000 }, `pulled ${shown} on demand (${mib(r.total)})`);
        } catch (e) {
          const err = pullFailure(shown, where, e, failureTtlMs);
          if (!stop.signal.aborted) remember(key, err);
          log.warn({ model: shown, statusCode: err.status, error: err.message }, `pulling ${shown} on demand failed`);
          throw err;
        } finally {
          running.delete(key);
        }
      })();
      r.promise.catch(() => {});
      running.set(key, r);
      return r;
    };

    return {
      async ensure(ref, name) {
        if (ref.host.toLowerCase() !== host) return false;
        const key = refKey(ref);
        const failed = failures.get(key);
        if (failed) {
          const left = failed.until - now();
          if (left > 0) throw failed.error instanceof RetryLater ? new RetryLater(failed.error.message, left / 1000) : failed.error;
          failures.delete(key);
        }
        let r = running.get(key);
        if (r) {
          log.info({ model: name, waiting: r.waiting + 1 }, `request for ${name} waits for its running pull`);
        } else {
          if (running.size >= maxPulls) throw new RetryLater(`model "${name}" is not here yet, and ${running.size} other pulls are running (the most at once); try again shortly`, 5);
          r = start(key, ref);
        }
        const pull = r;
        pull.waiting++;
        let timer: NodeJS.Timeout | undefined;
        try {
          const outcome = await Promise.race([
            pull.promise.then(() => "done" as const),
            new Promise<"late">((done) => (timer = setTimeout(() => done("late"), o.timeoutMs))),
          ]);
          if (outcome === "late") {
            throw new RetryLater(`model "${name}" is being pulled from ${where} (${percent(pull)} of ${mib(pull.total)}); try again shortly`, retryAfterS(pull, now()));
          }
          return true;
        } finally {
          clearTimeout(timer);
          pull.waiting--;
        }
      },
      close() {
        stop.abort(new RuntimeError("SERVICE_UNAVAILABLE", "the server is closing"));
      },
    };
  };
}

/** The error a client gets for a failed pull, in its own API's status: the registry's refusal is not a server fault. */
function pullFailure(name: string, where: string, e: unknown, ttlMs: number): MfError {
  const status = isMfError(e) ? e.status : undefined;
  const why = e instanceof Error ? e.message : String(e);
  if (status === 404) return new RuntimeError("MODEL_NOT_FOUND", `model "${name}" not found: ${where} does not have it (${why})`);
  if (status === 401 || status === 403) return new RuntimeError("DENIED", `model "${name}": ${where} refused the pull (${why})`);
  if (isMfError(e) && (e.code === "NAME_INVALID" || e.code === "TAG_INVALID")) return new RuntimeError("BAD_REQUEST", why);
  return new RetryLater(`model "${name}": pulling it from ${where} failed (${why}); try again later`, ttlMs / 1000);
}

/** When to come back (at `at`): the time the rest should take at the rate so far, within 1 to 60 s (5 s without a rate yet). */
function retryAfterS(r: Running, at: number): number {
  const elapsed = (at - r.startedAt) / 1000;
  if (r.completed <= 0 || r.total <= 0 || elapsed <= 0) return 5;
  const left = (r.total - r.completed) / (r.completed / elapsed);
  return Math.min(60, Math.max(1, Math.ceil(left)));
}

function percent(r: { completed: number; total: number }): string {
  return r.total > 0 ? `${Math.floor((100 * r.completed) / r.total)}%` : "0%";
}

function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}
