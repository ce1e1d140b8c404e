/**
 * A small client of the Ollama API for `mf run`, `mf ps` and `mf stop`: JSON calls and NDJSON streams,
 * with `{"error"}` answers (a status, or a last line) turned back into MfErrors.
 */
import { type ErrorCode, MfError } from "../core/errors.js";

/** `host:port` of MF_HOST as a URL a client can reach (a wildcard bind is reached on loopback). */
export function baseUrl(host: string): string {
  if (/^https?:\/\//.test(host)) return host.replace(/\/$/, "");
  const h = host.replace(/^0\.0\.0\.0(?=:|$)/, "127.0.0.1").replace(/^\[::\](?=:|$)/, "[::1]");
  return `http://${/:\d+$/.test(h) ? h : `${h}:11434`}`;
}

const BY_STATUS: Record<number, ErrorCode> = { 400: "BAD_REQUEST", 404: "MODEL_NOT_FOUND", 503: "SERVICE_UNAVAILABLE" };

function errorFor(status: number, message: string): MfError {
  return new MfError(BY_STATUS[status] ?? "INTERNAL", message);
}

export class RuntimeClient {
  constructor(readonly base: string) {}

  /** Whether a server answers `GET /`. */
  async reachable(signal?: AbortSignal): Promise<boolean> {
    try {
      const r = await fetch(this.base + "/", { signal: signal ?? AbortSignal.timeout(2000) });
      await r.body?.cancel();
      return r.ok;
    } catch {
      return false;
    }
  }

  async json<T>(path: string, body?: unknown, method = body === undefined ? "GET" : "POST"): Promise<T> {
    const r = await fetch(this.base + path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? undefined : { "content-type": "application/json" },
    });
    const text = await r.text();
    const parsed = text ? (JSON.parse(text) as T & { error?: string }) : ({} as T & { error?: string });
    if (!r.ok) throw errorFor(r.status, parsed.error ?? `${method} ${path}: ${r.status}`);
    return parsed;
  }

  /** The objects of an NDJSON answer, as they arrive. */
  async *stream<T>(path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<T> {
    const r = await fetch(this.base + path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" }, signal });
    if (!r.ok) {
      const text = await r.text();
      let msg = text;
      try {
        msg = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        // not JSON: the text itself
      }
      throw errorFor(r.status, msg);
    }
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const obj = JSON.parse(line) as { error?: string };
        if (obj.error) throw new MfError("INTERNAL", obj.error);
        yield obj as T;
      }
    }
    if (buf.trim()) {
      const obj = JSON.parse(buf) as { error?: string };
      if (obj.error) throw new MfError("INTERNAL", obj.error);
      yield obj as T;
    }
  }
}
