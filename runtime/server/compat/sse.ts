/**
 * Server-Sent Events for the compatible APIs: nothing is sent until the first event, so an error before
 * it still gets its status and the API's error body; after it, an error becomes a last event.
 */
import type { FastifyReply } from "fastify";
import { StreamBody } from "../http.js";

/** Events are written as the NDJSON answers' lines are: after the turn that made them (StreamBody). */
export class SseStream {
  started = false;
  private body: StreamBody | undefined;

  constructor(private readonly reply: FastifyReply) {}

  /** `data: {json}` (OpenAI), or with an `event:` line first (Anthropic, Responses). */
  send(data: unknown, event?: string): void {
    if (!this.body) {
      this.started = true;
      this.reply.hijack();
      const headers = { ...this.reply.getHeaders(), "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" };
      this.reply.raw.writeHead(200, headers as Record<string, string>);
      this.body = new StreamBody(this.reply.raw);
    }
    this.body.write(`${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  }

  end(): void {
    this.body?.end();
  }
}
