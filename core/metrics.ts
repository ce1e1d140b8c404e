/**
 * What the two servers' Prometheus metrics share (registry/server/metrics.ts, runtime/server/metrics.ts):
 * request counting by route template and status, the `GET /metrics` route, and the small metrics-only
 * server for a separate address. Loaded only when metrics are on (cli/metrics.ts imports prom-client on
 * use); the registry of metrics is always the one cli/ made and injected, never prom-client's global one.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** The route label of a request no route serves (any unknown path: one label, whatever the path). */
export const UNMATCHED = "unmatched";

/** Latency buckets (seconds) from a cached manifest read to a long blob transfer or generation. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export interface RequestMetrics {
  requests: Counter<"method" | "route" | "status">;
  duration: Histogram<"method" | "route">;
  inFlight: Gauge;
}

/** `<prefix>_http_requests_total`, `_http_request_duration_seconds` and `_http_requests_in_flight` on `registry`. */
export function createRequestMetrics(registry: Registry, prefix: string): RequestMetrics {
  const registers = [registry];
  return {
    requests: new Counter({ name: `${prefix}_http_requests_total`, help: "HTTP requests answered, by method, route template and status", labelNames: ["method", "route", "status"] as const, registers }),
    duration: new Histogram({
      name: `${prefix}_http_request_duration_seconds`,
      help: "time from a request's arrival to the end of its response (a streamed answer: its last byte), by method and route template",
      labelNames: ["method", "route"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inFlight: new Gauge({ name: `${prefix}_http_requests_in_flight`, help: "requests being answered", registers }),
  };
}

/**
 * Counts every request when its response closes (finished or cut), labelled by method, route template
 * (`routeOf`; fastify's own template by default, `unmatched` when no route served it) and status.
 */
export function instrumentRequests(app: FastifyInstance, m: RequestMetrics, routeOf: (request: FastifyRequest) => string = routeTemplate): void {
  app.addHook("onRequest", async (request, reply) => {
    const start = process.hrtime.bigint();
    const route = routeOf(request);
    m.inFlight.inc();
    reply.raw.once("close", () => {
      m.inFlight.dec();
      const method = request.method;
      m.requests.inc({ method, route, status: String(reply.raw.statusCode) });
      m.duration.observe({ method, route }, Number(process.hrtime.bigint() - start) / 1e9);
    });
  });
}

/** fastify's template of the route that serves a request (`/api/blobs/:digest`), or `unmatched`. */
export function routeTemplate(request: FastifyRequest): string {
  return request.routeOptions.url ?? UNMATCHED;
}

/** `GET /metrics` on an app: the registry's exposition text, after `guard` (which throws to refuse). */
export function serveMetrics(app: FastifyInstance, registry: Registry, guard?: (request: FastifyRequest, reply: FastifyReply) => Promise<void>): void {
  app.get("/metrics", async (request, reply) => {
    await guard?.(request, reply);
    const text = await registry.metrics();
    reply.code(200).header("Content-Type", registry.contentType).send(text);
  });
}

/** A server of `GET /metrics` alone, for `--metrics-addr` (never listens: cli/ does). */
export function createMetricsServer(registry: Registry): FastifyInstance {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  serveMetrics(app, registry);
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `no ${request.method} ${request.url.slice(0, 200)} here: this address serves GET /metrics` });
  });
  return app;
}
