/**
 * The OpenAI-compatible API under `/v1` (facts: ../shared/spec/compat-apis.md): chat completions,
 * completions, embeddings, models, and stateless responses. Each request is translated into the same
 * chat turn or generation as the native API, and the answer back into OpenAI's shapes: SSE streams
 * ending in `data: [DONE]`, errors as `{"error": {"message", "type", "param", "code"}}`. Model names
 * resolve exactly as on `/api/*`; `Authorization` is accepted and ignored.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { displayRef, DEFAULT_NAMESPACE } from "../../../core/reference.js";
import type { GenerationResult } from "../../engine/generation.js";
import { type ChatMessage, type Tool, type ToolCall, renderGeneratePromptAsync } from "../../prompt/index.js";
import { fitPrompt } from "../../options.js";
import { apiError, clientSignal } from "../http.js";
import { Logprobs, type Prepared, type RuntimeDeps, acquire, generate, ggufTemplate, prepare, promptTokens } from "../infer.js";
import { imagePrompt, requireCapability } from "../models.js";
import { embedOne, normalise } from "../routes/embed.js";
import { type TurnRequest, type TurnResult, checkTurn, runTurn } from "../turn.js";
import { addStops, argumentsObject, badRequest, errorType, forcedCallSchema, installErrorShape, nameToolResults, newId, unixSeconds } from "./common.js";
import { SseStream } from "./sse.js";

const FINGERPRINT = "fp_mf";
type Body = Record<string, any>;

export function openaiError(status: number, message: string, type = errorType(status)): { error: { message: string; type: string; param: null; code: string | null } } {
  return { error: { message, type, param: null, code: status === 404 ? "model_not_found" : null } };
}

// -------------------------------------------------------------------------------------------------
// Requests → the native shapes

function body(req: FastifyRequest): Body {
  const b = req.body;
  if (!b || typeof b !== "object" || Array.isArray(b)) throw badRequest("the request body must be a JSON object");
  if (typeof (b as Body).model !== "string" || !(b as Body).model) throw badRequest("model is required");
  return b as Body;
}

/** Text of a message's content: a string, or a list of text parts (images are refused). */
function text(content: unknown, where: string): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw badRequest(`${where}: content must be a string or a list of parts`);
  return content
    .map((part: Body) => {
      if (part?.type === "text" || part?.type === "input_text" || part?.type === "output_text") return String(part.text ?? "");
      if (part?.type === "image_url" || part?.type === "input_image") throw badRequest(`${where}: images are not supported: mf's engine has no vision support`);
      throw badRequest(`${where}: content part type ${JSON.stringify(part?.type)} is not supported`);
    })
    .join("");
}

function chatMessages(list: unknown): ChatMessage[] {
  if (!Array.isArray(list)) throw badRequest("messages must be a list");
  const out = list.map((m: Body, i): ChatMessage => {
    const where = `messages[${i}]`;
    if (!m || typeof m.role !== "string") throw badRequest(`${where}: role is required`);
    const role = m.role === "developer" ? "system" : m.role;
    if (!["system", "user", "assistant", "tool"].includes(role)) throw badRequest(`${where}: unknown role ${JSON.stringify(m.role)}`);
    const msg: ChatMessage = { role, content: text(m.content, where) };
    if (typeof m.reasoning === "string") msg.thinking = m.reasoning;
    if (Array.isArray(m.tool_calls)) {
      msg.tool_calls = m.tool_calls.map((c: Body, k: number) => ({
        id: typeof c.id === "string" ? c.id : undefined,
        function: { index: k, name: String(c.function?.name ?? ""), arguments: argumentsObject(c.function?.arguments, `${where}.tool_calls[${k}]`) },
      }));
    }
    if (role === "tool" && typeof m.tool_call_id === "string") msg.tool_call_id = m.tool_call_id;
    if (typeof m.name === "string" && role === "tool") msg.tool_name = m.name;
    return msg;
  });
  return nameToolResults(out);
}

function chatTools(list: unknown): Tool[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw badRequest("tools must be a list");
  return list.map((t: Body, i) => {
    // chat completions nest the function; the Responses API lays it flat
    const f = t?.function ?? t;
    if (t?.type !== "function" || typeof f?.name !== "string") throw badRequest(`tools[${i}]: only function tools with a name are supported`);
    return { type: "function", function: { name: f.name, description: f.description, parameters: f.parameters ?? { type: "object", properties: {} } } };
  });
}

/** `response_format` / Responses' `text.format` → the native `format`. */
function formatOf(rf: Body | undefined): unknown {
  if (!rf || rf.type === "text") return undefined;
  if (rf.type === "json_object") return "json";
  if (rf.type === "json_schema") {
    const schema = rf.json_schema?.schema ?? rf.schema;
    if (!schema || typeof schema !== "object") throw badRequest("response_format json_schema needs a schema");
    return schema;
  }
  throw badRequest(`response_format type ${JSON.stringify(rf.type)} is not supported`);
}

/** `tool_choice`: none drops the tools; required or a named function forces a call through a grammar. */
function applyToolChoice(choice: unknown, tools: Tool[], format: unknown): { tools: Tool[]; format: unknown } {
  if (choice === undefined || choice === null || choice === "auto") return { tools, format };
  if (choice === "none") return { tools: [], format };
  const name = typeof choice === "object" ? ((choice as Body).function?.name ?? (choice as Body).name) : undefined;
  if (choice !== "required" && typeof name !== "string") throw badRequest(`tool_choice ${JSON.stringify(choice)} is not supported`);
  if (format !== undefined) throw badRequest("a tool_choice that forces a call cannot be combined with a response format");
  return { tools, format: forcedCallSchema(tools, name) };
}

/** reasoning_effort → think: "none" turns thinking off, a level asks for it. */
function thinkOf(effort: unknown): boolean | string | undefined {
  if (effort === undefined || effort === null) return undefined;
  if (effort === "none") return false;
  if (typeof effort !== "string") throw badRequest("reasoning_effort must be a string");
  return effort === "minimal" ? "low" : effort;
}

/** The sampling fields both chat and completions take, as native options. */
function samplingOptions(b: Body, maxTokens: unknown): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const k of ["temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"]) if (b[k] !== undefined && b[k] !== null) o[k] = b[k];
  if (typeof b.stop === "string") o.stop = [b.stop];
  else if (Array.isArray(b.stop)) o.stop = b.stop;
  if (maxTokens !== undefined && maxTokens !== null) o.num_predict = maxTokens;
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw badRequest("n: only one choice per request is supported");
  if (b.logit_bias && Object.keys(b.logit_bias).length) throw badRequest("logit_bias is not supported");
  return o;
}

const usage = (r: { promptEvalCount: number; evalCount: number }) => ({ prompt_tokens: r.promptEvalCount, completion_tokens: r.evalCount, total_tokens: r.promptEvalCount + r.evalCount });
const finishReason = (t: { result: GenerationResult; toolCalls?: ToolCall[] }) => (t.toolCalls?.length ? "tool_calls" : t.result.doneReason === "length" ? "length" : "stop");
const wireCall = (c: ToolCall, index: number) => ({ index, id: c.id ?? newId("call_"), type: "function" as const, function: { name: c.function.name, arguments: JSON.stringify(c.function.arguments) } });

/** Runs a streamed or whole answer: on a client that went away, nothing more is written. */
async function guarded(reply: FastifyReply, signal: AbortSignal, sse: SseStream | undefined, run: () => Promise<unknown>): Promise<unknown> {
  try {
    return await run();
  } catch (e) {
    if (signal.aborted) return reply.hijack();
    if (!sse?.started) throw e;
    const err = apiError(e);
    sse.send(openaiError(err.status, err.message));
    sse.end();
    return reply;
  }
}

// -------------------------------------------------------------------------------------------------

export function openaiRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  app.register(
    async (v1) => {
      installErrorShape(v1, (status, message, type) => openaiError(status, message, type));

      v1.get("/models", async () => {
        const data = [];
        for (const m of await deps.store.listModels()) data.push(modelObject(displayRef(m.ref), m.ref.namespace, m.modified));
        return { object: "list", data };
      });
      v1.get("/models/*", async (req) => {
        const name = decodeURIComponent((req.params as { "*": string })["*"]);
        const m = await deps.models.find(name);
        return modelObject(name, m.ref.namespace, m.modified);
      });

      v1.post("/chat/completions", async (req, reply) => {
        const b = body(req);
        const messages = chatMessages(b.messages);
        const tc = applyToolChoice(b.tool_choice, chatTools(b.tools), formatOf(b.response_format));
        const options = samplingOptions(b, b.max_completion_tokens ?? b.max_tokens);
        const p = await prepare(deps, { model: b.model, options, format: tc.format });
        addStops(p.run, p.d.params, options.stop);
        const logprobs = Logprobs.of(b.logprobs, b.top_logprobs);
        const turn: TurnRequest = { model: b.model, messages, tools: tc.tools, think: thinkOf(b.reasoning_effort ?? b.reasoning?.effort), logprobs };
        checkTurn(turn, p);
        const signal = clientSignal(req, reply);
        const id = newId("chatcmpl-");
        const created = unixSeconds();
        const head = { id, created, model: b.model, system_fingerprint: FINGERPRINT };

        if (b.stream !== true) {
          return guarded(reply, signal, undefined, async () => {
            const t = await runTurn(deps, p, turn, { content: () => {} }, signal);
            const message: Body = { role: "assistant", content: t.toolCalls.length && !t.content ? null : t.content };
            if (t.thinking) message.reasoning = t.thinking;
            if (t.toolCalls.length) message.tool_calls = t.toolCalls.map((c, i) => {
              const { index: _index, ...rest } = wireCall(c, i);
              return rest;
            });
            const lp = logprobs ? { content: logprobs.all, refusal: null } : null;
            return { ...head, object: "chat.completion", choices: [{ index: 0, message, finish_reason: finishReason(t), logprobs: lp }], usage: usage(t.result) };
          });
        }
        const sse = new SseStream(reply);
        const chunk = (delta: Body, finish: string | null = null) =>
          sse.send({ ...head, object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish, logprobs: logprobs ? { content: logprobs.drain(), refusal: null } : null }] });
        let calls = 0;
        const first = () => {
          if (!sse.started) chunk({ role: "assistant", content: "" });
        };
        return guarded(reply, signal, sse, async () => {
          const t = await runTurn(deps, p, turn, {
            thinking: (reasoning) => (first(), chunk({ reasoning })),
            content: (content) => (first(), chunk({ content })),
            toolCall: (c) => (first(), chunk({ tool_calls: [wireCall(c, calls++)] })),
          }, signal);
          first();
          chunk({}, finishReason(t));
          if (b.stream_options?.include_usage) sse.send({ ...head, object: "chat.completion.chunk", choices: [], usage: usage(t.result) });
          sse.send("[DONE]");
          sse.end();
          return reply;
        });
      });

      v1.post("/completions", async (req, reply) => {
        const b = body(req);
        if (b.echo) throw badRequest("echo is not supported");
        if (b.best_of !== undefined && b.best_of !== null && b.best_of !== 1) throw badRequest("best_of: only one completion per prompt is supported");
        if (b.logprobs !== undefined && b.logprobs !== null) throw badRequest("logprobs is not supported on /v1/completions; /v1/chat/completions reports them");
        const prompts = promptList(b.prompt);
        const options = samplingOptions(b, b.max_tokens);
        const p = await prepare(deps, { model: b.model, options });
        addStops(p.run, p.d.params, options.stop);
        const signal = clientSignal(req, reply);
        const id = newId("cmpl-");
        const created = unixSeconds();
        const head = { id, object: "text_completion", created, model: b.model, system_fingerprint: FINGERPRINT };
        const suffix = typeof b.suffix === "string" && b.suffix ? b.suffix : undefined;
        // a template without `.Suffix` would drop the prompt: refused, as on /api/generate
        if (suffix) requireCapability(b.model, p.d.template, "insert");
        const sse = b.stream === true ? new SseStream(reply) : undefined;
        return guarded(reply, signal, sse, async () => {
          // several prompts are answered one after the other, each as the choice of its index
          const choices = [];
          const total = { promptEvalCount: 0, evalCount: 0 };
          for (const [index, prompt] of prompts.entries()) {
            let text = "";
            const r = await complete(deps, p, b.model, prompt, suffix, signal, (t) =>
              sse ? sse.send({ ...head, choices: [{ index, text: t, finish_reason: null, logprobs: null }] }) : (text += t),
            );
            total.promptEvalCount += r.promptEvalCount;
            total.evalCount += r.evalCount;
            const choice = { index, text, finish_reason: r.doneReason === "length" ? "length" : "stop", logprobs: null };
            if (sse) sse.send({ ...head, choices: [choice] });
            else choices.push(choice);
          }
          if (!sse) return { ...head, choices, usage: usage(total) };
          if (b.stream_options?.include_usage) sse.send({ ...head, choices: [], usage: usage(total) });
          sse.send("[DONE]");
          sse.end();
          return reply;
        });
      });

      v1.post("/embeddings", async (req, reply) => {
        const b = body(req);
        const inputs: unknown[] = Array.isArray(b.input) ? b.input : [b.input];
        if (!inputs.length || inputs.some((x) => typeof x !== "string")) throw badRequest("input must be a string or a list of strings (token arrays are not supported)");
        const encoding = b.encoding_format ?? "float";
        if (encoding !== "float" && encoding !== "base64") throw badRequest('encoding_format must be "float" or "base64"');
        if (b.dimensions !== undefined && (!Number.isInteger(b.dimensions) || b.dimensions < 1)) throw badRequest("dimensions must be a positive integer");
        const p = await prepare(deps, { model: b.model });
        const signal = clientSignal(req, reply);
        const lease = await acquire(deps, p, b.model, signal);
        try {
          const data = [];
          let tokens = 0;
          for (const [index, input] of (inputs as string[]).entries()) {
            const r = await embedOne(lease, input, true, signal);
            let v = normalise(r.vector);
            if (b.dimensions && b.dimensions < v.length) v = normalise(v.slice(0, b.dimensions));
            tokens += r.tokens;
            const embedding = encoding === "base64" ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v;
            data.push({ object: "embedding", embedding, index });
          }
          return { object: "list", data, model: b.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
        } finally {
          lease.release();
        }
      });

      v1.post("/responses", async (req, reply) => responses(deps, req, reply));
    },
    { prefix: "/v1" },
  );
}

/** `prompt`: a string or a list of strings (token arrays are refused: mf tokenizes with the model's own vocabulary). */
function promptList(prompt: unknown): string[] {
  const list = Array.isArray(prompt) ? prompt : [prompt];
  if (!list.length || list.some((x) => typeof x !== "string")) throw badRequest("prompt must be a string or a list of strings (token arrays are not supported)");
  return list as string[];
}

function modelObject(id: string, namespace: string, modified: Date) {
  return { id, object: "model", created: Math.floor(modified.getTime() / 1000), owned_by: namespace === DEFAULT_NAMESPACE ? "library" : namespace };
}

/** A plain completion of a prompt through the model's template (as /api/generate without options). */
async function complete(deps: RuntimeDeps, p: Prepared, model: string, prompt: string, suffix: string | undefined, signal: AbortSignal, onText: (t: string) => void): Promise<GenerationResult> {
  const lease = await acquire(deps, p, model, signal);
  try {
    const rendered = await renderGeneratePromptAsync(imagePrompt(p.d), { prompt, suffix }, { cache: deps.templates, ggufTemplate: ggufTemplate(lease), budget: deps.templateBudget() });
    const tokens = fitPrompt(promptTokens(lease, rendered.prompt, undefined), lease.model.contextSize, p.run.numKeep);
    return await generate(lease, p, tokens, onText, signal);
  } finally {
    lease.release();
  }
}

// -------------------------------------------------------------------------------------------------
// POST /v1/responses (stateless)

function responseInput(b: Body): ChatMessage[] {
  const msgs: ChatMessage[] = [];
  if (typeof b.instructions === "string" && b.instructions) msgs.push({ role: "system", content: b.instructions });
  if (typeof b.input === "string") return [...msgs, { role: "user", content: b.input }];
  if (!Array.isArray(b.input)) throw badRequest("input must be a string or a list of items");
  for (const [i, item] of (b.input as Body[]).entries()) {
    const where = `input[${i}]`;
    if (item?.type === "function_call") {
      const call: ToolCall = { id: item.call_id, function: { name: String(item.name), arguments: argumentsObject(item.arguments, where) } };
      const last = msgs.at(-1);
      if (last?.role === "assistant" && !last.content) last.tool_calls = [...(last.tool_calls ?? []), call];
      else msgs.push({ role: "assistant", content: "", tool_calls: [call] });
    } else if (item?.type === "function_call_output") {
      msgs.push({ role: "tool", content: typeof item.output === "string" ? item.output : JSON.stringify(item.output), tool_call_id: item.call_id });
    } else if (item?.type === "reasoning") {
      continue;
    } else if (item?.type === undefined || item?.type === "message") {
      const role = item.role === "developer" ? "system" : item.role;
      if (!["system", "user", "assistant"].includes(role)) throw badRequest(`${where}: unknown role ${JSON.stringify(item.role)}`);
      msgs.push({ role, content: text(item.content, where) });
    } else throw badRequest(`${where}: item type ${JSON.stringify(item.type)} is not supported`);
  }
  return nameToolResults(msgs);
}

async function responses(deps: RuntimeDeps, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const b = body(req);
  for (const k of ["previous_response_id", "conversation"]) {
    if (b[k] !== undefined && b[k] !== null) throw badRequest(`${k} is not supported: mf's /v1/responses is stateless; send the whole conversation in input`);
  }
  if (b.truncation !== undefined && b.truncation !== "disabled") throw badRequest("truncation is not supported");
  const messages = responseInput(b);
  const tc = applyToolChoice(b.tool_choice, chatTools(b.tools), formatOf(b.text?.format));
  const options = samplingOptions({ ...b, stop: undefined }, b.max_output_tokens);
  const p = await prepare(deps, { model: b.model, options, format: tc.format });
  const turn: TurnRequest = { model: b.model, messages, tools: tc.tools, think: thinkOf(b.reasoning?.effort) };
  checkTurn(turn, p);
  const signal = clientSignal(req, reply);
  const id = newId("resp_");
  const msgId = newId("msg_");
  const created = unixSeconds();
  const base = { id, object: "response", created_at: created, model: b.model, instructions: b.instructions ?? null, tools: b.tools ?? [], tool_choice: b.tool_choice ?? "auto", parallel_tool_calls: true, temperature: b.temperature ?? null, top_p: b.top_p ?? null, metadata: b.metadata ?? {}, error: null, incomplete_details: null };
  const finished = (t: TurnResult) => {
    const output: Body[] = [];
    if (t.thinking) output.push({ type: "reasoning", id: newId("rs_"), summary: [{ type: "summary_text", text: t.thinking }] });
    if (t.content || !t.toolCalls.length) output.push({ type: "message", id: msgId, status: "completed", role: "assistant", content: [{ type: "output_text", text: t.content, annotations: [] }] });
    for (const c of t.toolCalls) output.push({ type: "function_call", id: newId("fc_"), call_id: c.id, name: c.function.name, arguments: JSON.stringify(c.function.arguments), status: "completed" });
    const length = t.result.doneReason === "length";
    return {
      ...base,
      status: length ? "incomplete" : "completed",
      incomplete_details: length ? { reason: "max_output_tokens" } : null,
      output,
      output_text: t.content,
      usage: { input_tokens: t.result.promptEvalCount, output_tokens: t.result.evalCount, total_tokens: t.result.promptEvalCount + t.result.evalCount },
    };
  };
  if (b.stream !== true) return guarded(reply, signal, undefined, async () => finished(await runTurn(deps, p, turn, { content: () => {} }, signal)));

  const sse = new SseStream(reply);
  let seq = 0;
  const ev = (type: string, data: Body) => sse.send({ type, sequence_number: seq++, ...data }, type);
  let textOpen = false;
  let outputIndex = 0;
  let textIndex = -1;
  const openText = () => {
    if (textOpen) return;
    textOpen = true;
    textIndex = outputIndex++;
    ev("response.output_item.added", { output_index: textIndex, item: { type: "message", id: msgId, status: "in_progress", role: "assistant", content: [] } });
    ev("response.content_part.added", { item_id: msgId, output_index: textIndex, content_index: 0, part: { type: "output_text", text: "", annotations: [] } });
  };
  return guarded(reply, signal, sse, async () => {
    ev("response.created", { response: { ...base, status: "in_progress", output: [] } });
    ev("response.in_progress", { response: { ...base, status: "in_progress", output: [] } });
    const t = await runTurn(deps, p, turn, {
      content: (delta) => {
        openText();
        ev("response.output_text.delta", { item_id: msgId, output_index: textIndex, content_index: 0, delta });
      },
      toolCall: (c) => {
        const item = { type: "function_call", id: newId("fc_"), call_id: c.id, name: c.function.name, arguments: JSON.stringify(c.function.arguments), status: "completed" };
        const index = outputIndex++;
        ev("response.output_item.added", { output_index: index, item: { ...item, arguments: "", status: "in_progress" } });
        ev("response.function_call_arguments.delta", { item_id: item.id, output_index: index, delta: item.arguments });
        ev("response.function_call_arguments.done", { item_id: item.id, output_index: index, arguments: item.arguments });
        ev("response.output_item.done", { output_index: index, item });
      },
    }, signal);
    if (textOpen) {
      const part = { type: "output_text", text: t.content, annotations: [] };
      ev("response.output_text.done", { item_id: msgId, output_index: textIndex, content_index: 0, text: t.content });
      ev("response.content_part.done", { item_id: msgId, output_index: textIndex, content_index: 0, part });
      ev("response.output_item.done", { output_index: textIndex, item: { type: "message", id: msgId, status: "completed", role: "assistant", content: [part] } });
    }
    const final = finished(t);
    ev(final.status === "completed" ? "response.completed" : "response.incomplete", { response: final });
    sse.end();
    return reply;
  });
}
