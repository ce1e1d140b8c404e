/**
 * When each manifest was last pulled, for retention's `pulled-within` (gc.ts), recorded cheaply: a pull
 * (a manifest GET answered 200, by tag or digest) costs a write only when the recorded time is older than
 * the interval (`--pull-record-interval`, default 1 h). The server remembers what it recorded in a bounded
 * map, so a busy manifest costs one small write per interval per replica, and the first pull a process
 * sees of a manifest costs one read (another replica, or this one before a restart, may have recorded it
 * within the interval). Records live in the repository (layout.ts `pulledPath`) on any driver; gc removes
 * them with their manifest.
 */
import type { FastifyInstance } from "fastify";
import { parseDigest, type ParsedDigest } from "../../core/digest.js";
import { getManifest } from "./manifests.js";
import { decodeParam, matchRoute } from "./routes.js";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";
import { digestString } from "./validate.js";

export const DEFAULT_PULL_RECORD_INTERVAL_MS = 3600_000;
/** Manifests remembered at most (the oldest noted are forgotten first; forgetting costs one read later). */
const MAX_REMEMBERED = 100_000;

/** The recorded time of the last pull of a manifest in a repository, or null when none (or unreadable). */
export async function readPullTime(storage: StorageDriver, repo: string, d: ParsedDigest): Promise<number | null> {
  const raw = await storage.getContent(L.pulledPath(repo, d), 64);
  const ms = raw ? Number(raw.toString("utf8").trim()) : NaN;
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

export class PullRecorder {
  /** `repo@digest` → the time recorded (as far as this process knows) */
  private readonly known = new Map<string, number>();
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly storage: StorageDriver,
    private readonly intervalMs: number,
    private readonly clock: () => number,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** Notes a pull of `d` from `repo`; writes in the background, only when the recorded time is older than the interval. */
  pulled(repo: string, d: ParsedDigest): void {
    const key = `${repo}@${digestString(d)}`;
    const now = this.clock();
    const last = this.known.get(key);
    if (last !== undefined && now - last < this.intervalMs) return;
    // claimed before the write, so pulls arriving meanwhile do not write too
    this.remember(key, now);
    const p: Promise<void> = this.record(key, repo, d, now, last === undefined)
      .catch((e: unknown) => {
        this.known.delete(key);
        this.onError(e);
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Resolves when the writes started so far are done. */
  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.allSettled([...this.inflight]);
  }

  private async record(key: string, repo: string, d: ParsedDigest, now: number, unknown: boolean): Promise<void> {
    if (unknown) {
      const stored = await readPullTime(this.storage, repo, d);
      if (stored !== null && now - stored < this.intervalMs) {
        this.remember(key, stored);
        return;
      }
    }
    await this.storage.putContent(L.pulledPath(repo, d), Buffer.from(String(now)));
  }

  private remember(key: string, ms: number): void {
    this.known.delete(key);
    this.known.set(key, ms);
    if (this.known.size > MAX_REMEMBERED) this.known.delete(this.known.keys().next().value!);
  }
}

/** Notes every manifest GET answered 200 with the recorder; waits for its writes when the app closes. */
export function registerPullRecords(app: FastifyInstance, recorder: PullRecorder): void {
  app.addHook("onResponse", async (request, reply) => {
    if (request.method !== "GET" || reply.statusCode !== 200) return;
    let name: string | undefined;
    try {
      const match = matchRoute(request.method, request.url.split("?")[0]!);
      if (match.route.handler !== getManifest) return;
      name = decodeParam(match.params[0]!);
    } catch {
      return;
    }
    const header = reply.getHeader("docker-content-digest");
    const d = typeof header === "string" ? parseDigest(header) : null;
    if (d) recorder.pulled(name, d);
  });
  app.addHook("onClose", async () => recorder.drain());
}
