/**
 * A load balancer for tests and benchmarks of registry replicas: an HTTP proxy on 127.0.0.1:0 that sends
 * each request to the next replica in turn (nginx's default upstream balancing), streaming bodies both
 * ways and keeping the client's Host header, so the replicas build their Location URLs on its address.
 */
import { Agent, createServer, request, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface RoundRobin {
  base: string;
  host: string;
  /** requests sent to each replica so far */
  counts: number[];
  close(): Promise<void>;
}

export async function startRoundRobin(targets: string[]): Promise<RoundRobin> {
  const upstreams = targets.map((t) => new URL(t));
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const counts = upstreams.map(() => 0);
  let next = 0;
  const server = createServer((req, res) => {
    const i = next++ % upstreams.length;
    counts[i]!++;
    const up = upstreams[i]!;
    const headers: IncomingHttpHeaders = { ...req.headers, "x-forwarded-for": req.socket.remoteAddress ?? "" };
    const out = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.on("error", () => out.destroy());
    req.pipe(out);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    counts,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}
