/**
 * What the OpenAI- and Anthropic-compatible APIs share: ids, a forced tool call as a grammar, tool
 * results named after the call they answer, and an error handler that writes each API's own error
 * shape with the status the error table gives.
 */
import { randomBytes } from "node:crypto";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import type { ChatMessage, Tool, ToolCall } from "../../prompt/index.js";
import { RetryLater, apiError, setRetryAfter } from "../http.js";

export const newId = (prefix: string, bytes = 12): string => `${prefix}${randomBytes(bytes).toString("base64url")}`;
export const unixSeconds = (): number => Math.floor(Date.now() / 1000);

export function badRequest(message: string): RuntimeError {
  return new RuntimeError("BAD_REQUEST", message);
}

/**
 * The JSON Schema of an answer that is exactly one call of one of `tools` (the named one, when given):
 * sent as `format`, it forces the call through the grammar, since the tool parser reads a bare
 * `{"name", "arguments"}` object as a call.
 */
export function forcedCallSchema(tools: Tool[], name?: string): object {
  const chosen = name ? tools.filter((t) => t.function?.name === name) : tools;
  if (!chosen.length) throw badRequest(name ? `tool_choice names "${name}", which is not among the tools` : "tool_choice requires a call but no tools were given");
  const one = (t: Tool) => ({
    type: "object",
    properties: { name: { const: t.function.name }, arguments: t.function.parameters ?? { type: "object" } },
    required: ["name", "arguments"],
    additionalProperties: false,
  });
  return chosen.length === 1 ? one(chosen[0]!) : { anyOf: chosen.map(one) };
}

/**
 * A request's stop strings join the image's own (a chat template's end-of-turn marker among them)
 * instead of replacing them, so that a client's `stop` never lets the model run past its turn.
 */
export function addStops(run: { stop: string[] }, modelParams: Record<string, unknown>, stops: unknown): void {
  const own = Array.isArray(modelParams.stop) ? modelParams.stop.filter((s): s is string => typeof s === "string") : [];
  const asked = Array.isArray(stops) ? stops.filter((s): s is string => typeof s === "string") : [];
  run.stop = [...new Set([...own, ...asked])];
}

/** Gives each tool result the name of the call it answers (Ollama's `tool_name`), by the call's id. */
export function nameToolResults(messages: ChatMessage[]): ChatMessage[] {
  const names = new Map<string, string>();
  for (const m of messages) for (const c of m.tool_calls ?? []) if (c.id) names.set(c.id, c.function.name);
  return messages.map((m) => (m.role === "tool" && m.tool_call_id && !m.tool_name && names.has(m.tool_call_id) ? { ...m, tool_name: names.get(m.tool_call_id) } : m));
}

/** Parses a call's `arguments` sent as a JSON string (OpenAI) into the object templates print. */
export function argumentsObject(args: unknown, where: string): Record<string, unknown> {
  if (args === undefined || args === null || args === "") return {};
  let v = args;
  if (typeof args === "string") {
    try {
      v = JSON.parse(args);
    } catch {
      throw badRequest(`${where}: arguments is not valid JSON`);
    }
  }
  if (!v || typeof v !== "object" || Array.isArray(v)) throw badRequest(`${where}: arguments must be a JSON object`);
  return v as Record<string, unknown>;
}

export type ErrorShape = (status: number, message: string, type: string) => unknown;

/** The error type names both APIs use, by status. */
export function errorType(status: number): string {
  if (status === 404) return "not_found_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "overloaded_error";
  if (status >= 500) return "api_error";
  return "invalid_request_error";
}

/** Installs, inside an encapsulated plugin, an error and not-found handler writing `shape`. */
export function installErrorShape(app: FastifyInstance, shape: ErrorShape): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (reply.sent || reply.raw.headersSent) return;
    const e = apiError(err);
    const status = (err as { statusCode?: number }).statusCode === 413 ? 413 : e.status;
    if (status >= 500 && !(err instanceof RetryLater)) req.log.error({ err }, "request failed");
    setRetryAfter(reply, err);
    return reply.code(status).type("application/json; charset=utf-8").send(shape(status, e.message, errorType(status)));
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(shape(404, `${req.method} ${req.url} is not served by mf`, "not_found_error")));
}

export type { ToolCall };
