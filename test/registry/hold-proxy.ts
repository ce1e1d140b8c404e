/**
 * A TCP proxy on 127.0.0.1:0 in front of a registry that is killed and restarted: connections made while
 * the registry is down wait (their bytes held) until `setTarget` names the new one, so a client's retries
 * reach the restarted registry whatever its timing; connections to a registry that dies are cut, as the
 * client would see. Counts the bytes clients send.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface HoldingProxy {
  base: string;
  host: string;
  /** bytes received from clients since the last reset */
  sent: number;
  reset(): void;
  /** the registry's port, or undefined while it is down */
  setTarget(port: number | undefined): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(patienceMs = 60_000): Promise<HoldingProxy> {
  let target: number | undefined;
  let closed = false;
  let waiting: (() => void)[] = [];
  const sockets = new Set<Socket>();

  const whenTarget = (): Promise<number> =>
    target !== undefined ? Promise.resolve(target) : new Promise((r) => waiting.push(() => r(target!)));

  const pair = async (client: Socket) => {
    client.pause();
    const deadline = Date.now() + patienceMs;
    while (!client.destroyed) {
      const port = await whenTarget();
      if (closed) break;
      const upstream = connect(port, "127.0.0.1");
      const ok = await new Promise<boolean>((r) => {
        upstream.once("connect", () => r(true));
        upstream.once("error", () => r(false));
      });
      if (!ok) {
        upstream.destroy();
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      sockets.add(upstream);
      upstream.on("close", () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
      client.on("error", () => upstream.destroy());
      client.on("data", (c: Buffer) => (state.sent += c.length));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      return;
    }
    client.destroy();
  };

  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    void pair(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  const state: HoldingProxy = {
    base: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    sent: 0,
    reset() {
      state.sent = 0;
    },
    setTarget(p) {
      target = p;
      if (p === undefined) return;
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    },
    async close() {
      closed = true;
      for (const s of sockets) s.destroy();
      const w = waiting;
      waiting = [];
      for (const f of w) f();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return state;
}
