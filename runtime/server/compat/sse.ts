/**
 * Server-Sent Events for the compatible APIs: nothing is sent until the first event, so an error before
 * it still gets its status and the API's error body; after it, an error becomes a last event.
 */
import type { FastifyReply } from "fastify";

export class SseStream {
  started = false;

  constructor(private readonly reply: FastifyReply) {}

  /** `data: {json}` (OpenAI), or with an `event:` line first (Anthropic, Responses). */
  send(data: unknown, event?: string): void {
    if (!this.started) {
      this.started = true;
      this.reply.hijack();
      const headers = { ...this.reply.getHeaders(), "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" };
      this.reply.raw.writeHead(200, headers as Record<string, string>);
    }
    if (this.reply.raw.destroyed) return;
    this.reply.raw.write(`${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (this.started && !this.reply.raw.destroyed) this.reply.raw.end();
  }
}
