/**
 * The registry's Prometheus metrics, defined on a prom-client Registry that cli/ makes and injects
 * (`mf registry serve --metrics`). createRegistryServer takes the result and calls `install` on its app;
 * this module (and prom-client) is loaded only when metrics are on.
 *
 * Labels are bounded: a route is the template of the registry's route table (`/v2/{name}/blobs/{digest}`),
 * never a repository name, tag or digest; a path no route serves is `unmatched`.
 */
import { Transform, pipeline, type Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Counter, Gauge, type Registry } from "prom-client";
import { createRequestMetrics, instrumentRequests, routeTemplate, serveMetrics, UNMATCHED } from "../../core/metrics.js";
import { readGcStats, type GcStats } from "./gc-stats.js";
import { matchRoute, type Route } from "./routes.js";
import type { StorageDriver } from "./storage/driver.js";
import type { UploadSessions } from "./upload-sessions.js";

/** What the server hands `install`. */
export interface RegistryMetricParts {
  uploads: UploadSessions;
  storage: StorageDriver;
  /** serve `GET /metrics` on this app (false: the metrics are served on another address) */
  serve: boolean;
  /** checks a scrape on this app: what `GET /v2/` asks (with an access file, any key it knows) */
  guard(request: FastifyRequest, reply: FastifyReply): Promise<void>;
}

export interface RegistryMetrics {
  readonly registry: Registry;
  /** Counts blob bytes stored by uploads (UploadSessions' `onBytes`). */
  received(bytes: number): void;
  /** Counts a refusal (token-auth's `onDenied`), by the action asked for. */
  denied(action: string): void;
  /** Adds the request hooks, the blob byte counting and the collected gauges to a registry app. */
  install(app: FastifyInstance, parts: RegistryMetricParts): void;
}

export function createRegistryMetrics(registry: Registry): RegistryMetrics {
  const registers = [registry];
  const http = createRequestMetrics(registry, "mf_registry");
  const bytesIn = new Counter({ name: "mf_registry_blob_bytes_received_total", help: "blob bytes received and stored by uploads (PATCH, PUT, monolithic POST)", registers });
  const bytesOut = new Counter({ name: "mf_registry_blob_bytes_sent_total", help: "blob bytes this registry sent (GET of a blob or a signed blob URL; not reads served by S3 directly)", registers });
  const denials = new Counter({ name: "mf_registry_auth_denials_total", help: "requests refused by the access file (credentials presented but not allowed, or unknown), by action", labelNames: ["action"] as const, registers });
  let parts: RegistryMetricParts | undefined;
  new Gauge({
    name: "mf_registry_upload_sessions_open",
    help: "upload sessions in storage (begun, neither finished, cancelled nor expired; every replica's)",
    registers,
    async collect() {
      if (!parts) return;
      const ids = await parts.uploads.ids().catch(() => undefined);
      if (ids) this.set(ids.length);
    },
  });
  // gc runs in its own process (`mf registry gc`), which records its figures in storage (gc-stats.ts).
  // A scrape collects every metric at once: the gc ones share one read of the record per scrape.
  let reading: Promise<GcStats | undefined> | undefined;
  const gcStats = (): Promise<GcStats | undefined> => {
    if (!parts) return Promise.resolve(undefined);
    if (!reading) {
      // storage unreadable now: undefined, and the figures of the last scrape stay
      reading = readGcStats(parts.storage).catch(() => undefined);
      void reading.finally(() => (reading = undefined));
    }
    return reading;
  };
  const gcCounter = (name: string, help: string, pick: (s: GcStats) => number) =>
    new Counter({
      name, help, registers,
      async collect() {
        const s = await gcStats();
        if (!s) return;
        this.reset();
        this.inc(pick(s));
      },
    });
  gcCounter("mf_registry_gc_runs_total", "`mf registry gc` runs that finished (not dry runs), on this storage", (s) => s.runs);
  gcCounter("mf_registry_gc_freed_bytes_total", "blob bytes `mf registry gc` removed, on this storage", (s) => s.freedBytes);
  gcCounter("mf_registry_gc_blobs_removed_total", "blobs `mf registry gc` removed, on this storage", (s) => s.blobsRemoved);
  gcCounter("mf_registry_gc_manifests_removed_total", "untagged manifests `mf registry gc` removed, on this storage", (s) => s.manifestsRemoved);
  new Gauge({
    name: "mf_registry_gc_last_run_timestamp_seconds",
    help: "when the last `mf registry gc` run on this storage finished (0: never)",
    registers,
    async collect() {
      const s = await gcStats();
      if (s) this.set(s.lastRunMs / 1000);
    },
  });

  return {
    registry,
    received: (bytes) => bytesIn.inc(bytes),
    denied: (action) => denials.inc({ action: actionLabel(action) }),
    install(app, p) {
      parts = p;
      instrumentRequests(app, http, registryRoute);
      // blob bodies going out are counted as they stream (a download cut halfway counts what was sent)
      app.addHook("onSend", async (request, reply, payload) => {
        if (request.method !== "GET" || (reply.statusCode !== 200 && reply.statusCode !== 206)) return payload;
        if (!routeOf(request)?.blob) return payload;
        if (Buffer.isBuffer(payload)) {
          bytesOut.inc(payload.length);
          return payload;
        }
        if (payload && typeof (payload as Readable).pipe === "function") {
          const counter = new Transform({
            transform(chunk: Buffer, _enc, done) {
              bytesOut.inc(chunk.length);
              done(null, chunk);
            },
          });
          return pipeline(payload as Readable, counter, () => {});
        }
        return payload;
      });
      if (p.serve) serveMetrics(app, registry, p.guard);
    },
  };
}

/** The registry route a request falls in, by the route table (the dispatcher's own match), if any. */
function routeOf(request: FastifyRequest): Route | undefined {
  try {
    return matchRoute(request.method, request.url.split("?")[0]!).route;
  } catch {
    return undefined;
  }
}

/** A request's route label: the route table's template, else fastify's (`/healthz`, `/token`), else `unmatched`. */
function registryRoute(request: FastifyRequest): string {
  const fastifyUrl = request.routeOptions.url;
  // /v2/ and the signed blob URLs are dispatched by the route table (fastify sees only `/v2/*`)
  if (fastifyUrl === "/v2" || fastifyUrl?.endsWith("/*")) {
    const route = routeOf(request);
    if (route) return templateOf(route);
    if (fastifyUrl === "/v2/*" || fastifyUrl === "/_mf/*") return UNMATCHED;
  }
  return routeTemplate(request);
}

const templates = new WeakMap<Route, string>();

/**
 * A route's template, written from its pattern: `^/v2/(.+)/manifests/([^/]+)$` → `/v2/{name}/manifests/{reference}`.
 * Each capture is named after the path segment before it.
 */
export function templateOf(route: Route): string {
  let t = templates.get(route);
  if (t !== undefined) return t;
  const names: Record<string, string> = { manifests: "{reference}", blobs: "{digest}", referrers: "{digest}", uploads: "{session}" };
  t = route.pattern.source
    .replace(/^\^/, "")
    .replace(/\$$/, "")
    .replace(/\\\//g, "/")
    .replace(/\/\?/g, "/")
    .replace(/\(\.\+\)/g, "{name}")
    .replace(/([A-Za-z_]+)\/\(\[\^\/\]\+\)/g, (_m, seg: string) => `${seg}/${names[seg] ?? "{param}"}`);
  templates.set(route, t);
  return t;
}

/** Denied actions as a bounded label: `pull`, `push`, `delete` (sorted, comma-joined), `catalog`, `ping`, `token`, else `other`. */
function actionLabel(action: string): string {
  if (["catalog", "ping", "token"].includes(action)) return action;
  const parts = [...new Set(action.split(","))].sort();
  return parts.length > 0 && parts.every((a) => a === "pull" || a === "push" || a === "delete") ? parts.join(",") : "other";
}
