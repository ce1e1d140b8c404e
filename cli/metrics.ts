/**
 * Prometheus metrics for `mf registry serve --metrics` and `mf serve --metrics`: the prom-client Registry
 * each server is given (made here, never prom-client's global one, with the process's own metrics on
 * it), and the metrics-only server on `--metrics-addr`. prom-client is loaded only when metrics are on.
 */
import type { Registry } from "prom-client";
import { MfError } from "../core/errors.js";

/** A fresh Registry with Node's process metrics (CPU, memory, event loop lag) on it. */
export async function metricsRegistry(): Promise<Registry> {
  const prom = await import("prom-client");
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry });
  return registry;
}

/** `HOST:PORT` (`[::1]:9100`; port 0: any free port). */
export function splitHostPort(addr: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m || Number(m[3]) > 65535) throw new MfError("BAD_REQUEST", `invalid ${flag} "${addr}" (expected HOST:PORT)`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port: Number(m[3]) };
}

export interface MetricsListener {
  address: string;
  close(): Promise<void>;
}

/** Serves `GET /metrics` alone on `addr` (`--metrics-addr`); resolves once it listens. */
export async function listenMetrics(registry: Registry, addr: string, flag = "--metrics-addr"): Promise<MetricsListener> {
  const { host, port } = splitHostPort(addr, flag);
  const { createMetricsServer } = await import("../core/metrics.js");
  const app = createMetricsServer(registry);
  try {
    const address = await app.listen({ host, port });
    return { address, close: () => app.close() };
  } catch (e) {
    await app.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new MfError("BAD_REQUEST", `cannot listen on ${flag} ${addr}: the address is already in use; pick another port`, { cause: e });
    if (code === "EACCES") throw new MfError("BAD_REQUEST", `cannot listen on ${flag} ${addr}: permission denied (ports below 1024 need privileges)`, { cause: e });
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN") throw new MfError("BAD_REQUEST", `cannot listen on ${flag} ${addr}: ${host} is not an address of this machine`, { cause: e });
    throw e;
  }
}
