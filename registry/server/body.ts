/**
 * A request body as an async iterable that keeps the socket flowing: chunks are queued as they arrive
 * and the socket is paused only when `maxQueued` bytes wait (backpressure without a pause/resume per
 * 64 KiB chunk, which is what iterating an IncomingMessage with its 16 KiB high-water mark does).
 */
import type { IncomingMessage } from "node:http";

export function bodySource(req: IncomingMessage, maxQueued = 2 << 20): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const queue: Buffer[] = [];
      let queued = 0;
      let ended = req.complete && req.readableEnded;
      let failure: Error | undefined;
      let wake: (() => void) | undefined;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const onData = (chunk: Buffer) => {
        queue.push(chunk);
        queued += chunk.length;
        if (queued >= maxQueued) req.pause();
        notify();
      };
      const onEnd = () => {
        ended = true;
        notify();
      };
      const onError = (e: Error) => {
        failure = e;
        notify();
      };
      const onClose = () => {
        if (!req.complete && !failure) failure = Object.assign(new Error("request body cut before its end"), { code: "ECONNRESET" });
        notify();
      };
      const detach = () => {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        req.off("close", onClose);
      };
      req.on("data", onData);
      req.on("end", onEnd);
      req.on("error", onError);
      req.on("close", onClose);
      req.resume();
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          for (;;) {
            const chunk = queue.shift();
            if (chunk) {
              queued -= chunk.length;
              if (queued < maxQueued / 2 && req.isPaused()) req.resume();
              return { value: chunk, done: false };
            }
            if (failure) {
              detach();
              throw failure;
            }
            if (ended) {
              detach();
              return { value: undefined, done: true };
            }
            await new Promise<void>((r) => (wake = r));
          }
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          detach();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
