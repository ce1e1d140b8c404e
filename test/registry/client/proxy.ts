/**
 * A counting, fault-injecting HTTP proxy for client tests, on 127.0.0.1:0 in front of a registry. It
 * counts blob bytes served (per digest, redirected signed URLs included) and upload bytes received, and
 * lets a test corrupt a byte, reset a connection or stall a transfer at a chosen point.
 */
import { createServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";

export type ChunkVerdict = Buffer | "reset" | "stall" | void;

export interface BlobChunk {
  digest: string;
  method: string;
  /** bytes of this digest served (or received) before this chunk, over the proxy's life */
  before: number;
  chunk: Buffer;
}

export interface CannedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface ProxyHooks {
  /** answer a request without forwarding it */
  respond?(req: IncomingMessage): CannedAnswer | void;
  /** each chunk of a blob body going to the client */
  onBlobChunk?(c: BlobChunk): ChunkVerdict;
  /** each chunk of an upload body going to the registry (digest: the upload's blob, when known) */
  onUploadChunk?(c: BlobChunk): ChunkVerdict;
}

export interface CountingProxy {
  base: string;
  /** blob bytes served, by digest */
  served: Map<string, number>;
  /** upload bytes forwarded to the registry, by digest */
  received: Map<string, number>;
  /** "METHOD path" of every request (with " auth" when it carried an Authorization header) */
  log: string[];
  /** destroys every open connection (stalled transfers included), both sides */
  dropAll(): void;
  hooks: ProxyHooks;
  /** count every upload body under this digest (the one blob a test pushes) */
  uploadDigest?: string;
  reset(): void;
  close(): Promise<void>;
}

const BLOB_RE = /\/blobs\/(sha256:[0-9a-f]{64})/;

export async function startProxy(target: string, hooks: ProxyHooks = {}): Promise<CountingProxy> {
  const t = new URL(target);
  const sockets = new Set<Socket>();
  const upstreams = new Set<ClientRequest>();
  const state: CountingProxy = {
    base: "",
    served: new Map(),
    received: new Map(),
    log: [],
    hooks,
    reset() {
      state.served.clear();
      state.received.clear();
      state.log.length = 0;
    },
    dropAll() {
      for (const s of sockets) s.destroy();
      for (const u of upstreams) u.destroy();
    },
    close: async () => {
      state.dropAll();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  /** the digest an upload is counted under: the test's `uploadDigest`, else a `digest=` query */
  const uploadDigest = (req: IncomingMessage): string =>
    state.uploadDigest ?? /digest=(sha256(?::|%3A)[0-9a-f]{64})/i.exec(req.url ?? "")?.[1]?.replace(/%3A/i, ":") ?? "?";

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    state.log.push(`${req.method} ${req.url}${req.headers.authorization ? " auth" : ""}`);
    const canned = state.hooks.respond?.(req);
    if (canned) {
      req.resume();
      res.writeHead(canned.status, { "content-type": "application/json", ...canned.headers });
      res.end(canned.body ?? "");
      return;
    }
    const upstream = request({
      host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers,
    }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      const m = BLOB_RE.exec(req.url ?? "");
      const isBlob = req.method === "GET" && m && (up.statusCode === 200 || up.statusCode === 206);
      if (!isBlob) {
        up.pipe(res);
        return;
      }
      const digest = m[1]!;
      up.on("data", (chunk: Buffer) => {
        const before = state.served.get(digest) ?? 0;
        const v = state.hooks.onBlobChunk?.({ digest, method: req.method!, before, chunk });
        if (v === "reset") {
          up.destroy();
          res.socket?.destroy();
          return;
        }
        if (v === "stall") {
          up.pause();
          return;
        }
        const out = v instanceof Buffer ? v : chunk;
        state.served.set(digest, before + out.length);
        if (!res.write(out)) {
          up.pause();
          res.once("drain", () => up.resume());
        }
      });
      up.on("end", () => res.end());
      up.on("error", () => res.destroy());
    });
    upstreams.add(upstream);
    upstream.on("close", () => upstreams.delete(upstream));
    upstream.on("error", () => res.destroy());
    const isUpload = (req.method === "PATCH" || req.method === "PUT") && /\/blobs\/uploads\//.test(req.url ?? "");
    if (!isUpload) {
      req.pipe(upstream);
      return;
    }
    const digest = uploadDigest(req);
    req.on("data", (chunk: Buffer) => {
      const before = state.received.get(digest) ?? 0;
      const v = state.hooks.onUploadChunk?.({ digest, method: req.method!, before, chunk });
      if (v === "reset") {
        upstream.destroy();
        req.socket.destroy();
        return;
      }
      if (v === "stall") {
        req.pause();
        return;
      }
      state.received.set(digest, before + chunk.length);
      if (!upstream.write(v instanceof Buffer ? v : chunk)) {
        req.pause();
        upstream.once("drain", () => req.resume());
      }
    });
    req.on("end", () => upstream.end());
    req.on("error", () => upstream.destroy());
  };

  const server: Server = createServer(handle);
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}
