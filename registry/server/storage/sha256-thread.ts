/**
 * The worker side of sha256-worker.ts: resumable SHA-256 states by id, fed in message order, so a
 * `save` answers the state after every `update` posted before it.
 */
import { parentPort } from "node:worker_threads";
import { ResumableSha256, type Sha256State } from "./sha256-state.js";

export type ThreadRequest =
  | { op: "open"; id: number; state?: Sha256State }
  | { op: "update"; id: number; data: ArrayBuffer }
  | { op: "save"; id: number; seq: number }
  | { op: "close"; id: number };

export interface ThreadReply {
  seq: number;
  state?: Sha256State;
  hex?: string;
  error?: string;
}

const hashes = new Map<number, ResumableSha256>();

parentPort?.on("message", (m: ThreadRequest) => {
  try {
    if (m.op === "open") hashes.set(m.id, new ResumableSha256(m.state));
    else if (m.op === "update") hashes.get(m.id)!.update(new Uint8Array(m.data));
    else if (m.op === "close") hashes.delete(m.id);
    else {
      const h = hashes.get(m.id)!;
      parentPort!.postMessage({ seq: m.seq, state: h.save(), hex: h.hex() } satisfies ThreadReply);
    }
  } catch (e) {
    if (m.op === "save") parentPort!.postMessage({ seq: m.seq, error: (e as Error).message } satisfies ThreadReply);
  }
});
