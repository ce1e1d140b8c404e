/**
 * Anthropic's Messages API, `POST /v1/messages` (facts: ../shared/spec/compat-apis.md): system, messages
 * with text, tool_use and tool_result blocks, tools, max_tokens, stop_sequences, temperature/top_p/top_k,
 * thinking, tool_choice (forced through a grammar, which Ollama does not do). Streams use the full event
 * sequence; errors Anthropic's `{"type":"error","error":{"type","message"}}`. `x-api-key` and
 * `anthropic-version` are accepted and ignored. Images, prompt caching and token counting are refused
 * with a clear error.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ChatMessage, Tool, ToolCall } from "../../prompt/index.js";
import { apiError, clientSignal } from "../http.js";
import { type RuntimeDeps, prepare } from "../infer.js";
import { type TurnRequest, type TurnResult, checkTurn, runTurn } from "../turn.js";
import { addStops, badRequest, errorType, forcedCallSchema, installErrorShape, nameToolResults, newId } from "./common.js";
import { SseStream } from "./sse.js";

type Body = Record<string, any>;

export function anthropicError(status: number, message: string, type = errorType(status)): { type: "error"; error: { type: string; message: string } } {
  return { type: "error", error: { type, message } };
}

const NO_IMAGES = "image blocks are not supported: mf's engine has no vision support";
const NO_CACHE = "cache_control (prompt caching) is not supported by mf";

function refuseCache(block: Body, where: string): void {
  if (block && typeof block === "object" && block.cache_control !== undefined) throw badRequest(`${where}: ${NO_CACHE}`);
}

function blocks(content: unknown, where: string): Body[] {
  if (typeof content === "string") return [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw badRequest(`${where}: content must be a string or a list of blocks`);
  return content as Body[];
}

function resultText(content: unknown, where: string): string {
  if (content === undefined || content === null) return "";
  return blocks(content, where)
    .map((b, i) => {
      if (b?.type === "text") return String(b.text ?? "");
      if (b?.type === "image") throw badRequest(`${where}[${i}]: ${NO_IMAGES}`);
      throw badRequest(`${where}[${i}]: block type ${JSON.stringify(b?.type)} is not supported in a tool result`);
    })
    .join("");
}

/** Anthropic messages → the native conversation: tool results become `tool` messages. */
function conversation(b: Body): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (b.system !== undefined) {
    const sys = blocks(b.system, "system").map((x, i) => {
      refuseCache(x, `system[${i}]`);
      if (x?.type !== "text") throw badRequest(`system[${i}]: only text blocks are supported`);
      return String(x.text ?? "");
    });
    if (sys.join("")) out.push({ role: "system", content: sys.join("\n") });
  }
  if (!Array.isArray(b.messages)) throw badRequest("messages: field required");
  for (const [i, m] of (b.messages as Body[]).entries()) {
    const where = `messages[${i}]`;
    if (m?.role !== "user" && m?.role !== "assistant") throw badRequest(`${where}.role: must be "user" or "assistant"`);
    let text = "";
    let thinking = "";
    const calls: ToolCall[] = [];
    for (const [k, x] of blocks(m.content, where).entries()) {
      const at = `${where}.content[${k}]`;
      refuseCache(x, at);
      switch (x?.type) {
        case "text":
          text += String(x.text ?? "");
          break;
        case "thinking":
          thinking += String(x.thinking ?? "");
          break;
        case "redacted_thinking":
          break;
        case "image":
        case "document":
          throw badRequest(`${at}: ${x.type === "image" ? NO_IMAGES : "document blocks (PDFs) are not supported"}`);
        case "tool_use":
          if (m.role !== "assistant") throw badRequest(`${at}: tool_use blocks belong to assistant messages`);
          calls.push({ id: String(x.id ?? ""), function: { name: String(x.name ?? ""), arguments: (x.input && typeof x.input === "object" ? x.input : {}) as Record<string, unknown> } });
          break;
        case "tool_result":
          if (m.role !== "user") throw badRequest(`${at}: tool_result blocks belong to user messages`);
          out.push({ role: "tool", content: resultText(x.content, `${at}.content`), tool_call_id: String(x.tool_use_id ?? "") });
          break;
        default:
          throw badRequest(`${at}: block type ${JSON.stringify(x?.type)} is not supported`);
      }
    }
    if (m.role === "user" && !text && out.at(-1)?.role === "tool") continue;
    const msg: ChatMessage = { role: m.role, content: text };
    if (thinking) msg.thinking = thinking;
    if (calls.length) msg.tool_calls = calls;
    out.push(msg);
  }
  return nameToolResults(out);
}

function tools(list: unknown): Tool[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw badRequest("tools: must be a list");
  return (list as Body[]).map((t, i) => {
    refuseCache(t, `tools[${i}]`);
    if (typeof t?.name !== "string") throw badRequest(`tools[${i}].name: field required`);
    if (t.type !== undefined && t.type !== "custom") throw badRequest(`tools[${i}]: server tools (${String(t.type)}) are not supported`);
    return { type: "function", function: { name: t.name, description: t.description, parameters: t.input_schema ?? { type: "object", properties: {} } } };
  });
}

const stopReason = (t: TurnResult, stops: string[]): { stop_reason: string; stop_sequence: string | null } => {
  if (t.toolCalls.length) return { stop_reason: "tool_use", stop_sequence: null };
  if (t.result.doneReason === "length") return { stop_reason: "max_tokens", stop_sequence: null };
  const seq = t.result.stopSequence;
  if (seq && stops.includes(seq)) return { stop_reason: "stop_sequence", stop_sequence: seq };
  return { stop_reason: "end_turn", stop_sequence: null };
};

export function anthropicRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  app.register(
    async (api) => {
      installErrorShape(api, (status, message, type) => anthropicError(status, message, type));
      api.post("/count_tokens", async () => {
        throw badRequest("count_tokens is not supported by mf: the count depends on the model's template; use max_tokens and usage from /v1/messages");
      });
      api.post("/batches", async () => {
        throw badRequest("message batches are not supported by mf");
      });
      api.post("/", async (req, reply) => messages(deps, req, reply));
    },
    { prefix: "/v1/messages" },
  );
}

async function messages(deps: RuntimeDeps, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const b = req.body as Body;
  if (!b || typeof b !== "object" || Array.isArray(b)) throw badRequest("the request body must be a JSON object");
  if (typeof b.model !== "string" || !b.model) throw badRequest("model: field required");
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) throw badRequest("max_tokens: field required (a positive integer)");
  const msgs = conversation(b);
  let tl = tools(b.tools);
  let format: unknown;
  const choice = b.tool_choice as Body | undefined;
  if (choice?.type === "none") tl = [];
  else if (choice?.type === "any") format = forcedCallSchema(tl);
  else if (choice?.type === "tool") format = forcedCallSchema(tl, String(choice.name));
  else if (choice !== undefined && choice?.type !== "auto") throw badRequest(`tool_choice: type ${JSON.stringify(choice?.type)} is not supported`);
  const stops: string[] = Array.isArray(b.stop_sequences) ? b.stop_sequences.filter((s: unknown) => typeof s === "string") : [];
  const options: Record<string, unknown> = { num_predict: b.max_tokens };
  for (const k of ["temperature", "top_p", "top_k"]) if (typeof b[k] === "number") options[k] = b[k];
  if (stops.length) options.stop = stops;
  const think = b.thinking?.type === "enabled" ? true : b.thinking?.type === "disabled" ? false : undefined;
  const p = await prepare(deps, { model: b.model, options, format });
  addStops(p.run, p.d.params, stops);
  const turn: TurnRequest = { model: b.model, messages: msgs, tools: tl, think };
  checkTurn(turn, p);
  const signal = clientSignal(req, reply);
  const id = newId("msg_");
  const head = { id, type: "message", role: "assistant", model: b.model };

  if (b.stream !== true) {
    try {
      const t = await runTurn(deps, p, turn, { content: () => {} }, signal);
      const content: Body[] = [];
      if (t.thinking) content.push({ type: "thinking", thinking: t.thinking, signature: "" });
      if (t.content || !t.toolCalls.length) content.push({ type: "text", text: t.content });
      for (const c of t.toolCalls) content.push({ type: "tool_use", id: toolUseId(c), name: c.function.name, input: c.function.arguments });
      return { ...head, content, ...stopReason(t, stops), usage: { input_tokens: t.result.promptEvalCount, output_tokens: t.result.evalCount } };
    } catch (e) {
      if (signal.aborted) return reply.hijack();
      throw e;
    }
  }

  const sse = new SseStream(reply);
  const ev = (type: string, data: Body = {}) => sse.send({ type, ...data }, type);
  let index = -1;
  let open: "text" | "thinking" | undefined;
  const close = () => {
    if (open) ev("content_block_stop", { index });
    open = undefined;
  };
  const block = (kind: "text" | "thinking") => {
    if (open === kind) return;
    close();
    index++;
    open = kind;
    ev("content_block_start", { index, content_block: kind === "text" ? { type: "text", text: "" } : { type: "thinking", thinking: "", signature: "" } });
  };
  try {
    ev("message_start", { message: { ...head, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } } });
    const t = await runTurn(deps, p, turn, {
      thinking: (thinking) => {
        block("thinking");
        ev("content_block_delta", { index, delta: { type: "thinking_delta", thinking } });
      },
      content: (text) => {
        block("text");
        ev("content_block_delta", { index, delta: { type: "text_delta", text } });
      },
      toolCall: (c) => {
        close();
        index++;
        ev("content_block_start", { index, content_block: { type: "tool_use", id: toolUseId(c), name: c.function.name, input: {} } });
        ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: JSON.stringify(c.function.arguments) } });
        ev("content_block_stop", { index });
      },
    }, signal);
    if (open === "thinking") ev("content_block_delta", { index, delta: { type: "signature_delta", signature: "" } });
    close();
    ev("message_delta", { delta: stopReason(t, stops), usage: { input_tokens: t.result.promptEvalCount, output_tokens: t.result.evalCount } });
    ev("message_stop");
    sse.end();
  } catch (e) {
    if (signal.aborted) return reply.hijack();
    const err = apiError(e);
    ev("error", { error: { type: errorType(err.status), message: err.message } });
    sse.end();
  }
  return reply;
}

/** Anthropic's ids for tool uses: `toolu_…`, kept with the call. */
function toolUseId(c: ToolCall): string {
  if (!c.id?.startsWith("toolu_")) c.id = `toolu_${(c.id ?? newId("")).replace(/^call_/, "")}`;
  return c.id;
}
