/** `POST /api/chat`: the next assistant message of a conversation (runtime/server/turn.ts), `_debug_render_only` included. */
import type { FastifyInstance } from "fastify";
import { type ChatMessage, type Tool, renderChatPromptAsync } from "../../prompt/index.js";
import { NdjsonStream, clientSignal, createdAt } from "../http.js";
import { Logprobs, type RuntimeDeps, acquire, ggufTemplate, loadOrUnload, needsGgufTemplate, prepare, stats } from "../infer.js";
import { imagePrompt } from "../models.js";
import { chatSchema } from "../schemas.js";
import { type TurnRequest, checkTurn, runTurn, thinkPlan } from "../turn.js";

interface ChatBody {
  model: string;
  messages?: (Omit<ChatMessage, "content"> & { content?: string | null })[] | null;
  tools?: Tool[] | null;
  stream?: boolean;
  format?: string | object;
  template?: string;
  keep_alive?: string | number;
  options?: Record<string, unknown> | null;
  think?: boolean | string;
  logprobs?: boolean;
  top_logprobs?: number;
  _debug_render_only?: boolean;
}

export function chatRoute(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: ChatBody }>("/api/chat", { schema: { body: chatSchema } }, async (req, reply) => {
    const start = process.hrtime.bigint();
    const b = req.body;
    const messages: ChatMessage[] = (b.messages ?? []).map((m) => ({ ...m, content: m.content ?? "" }) as ChatMessage);
    const tools = b.tools ?? [];
    const p = await prepare(deps, b);
    const logprobs = Logprobs.of(b.logprobs, b.top_logprobs);
    const turn: TurnRequest = { model: b.model, messages, tools, think: b.think, template: b.template, logprobs };
    checkTurn(turn, p);
    const signal = clientSignal(req, reply);
    const head = () => ({ model: b.model, created_at: createdAt() });

    if (b._debug_render_only) {
      // without a template the GGUF's own chat template renders the prompt: that needs the loaded model
      const lease = needsGgufTemplate(p, b.template) ? await acquire(deps, p, b.model, signal) : undefined;
      try {
        const { think } = thinkPlan(b.model, b.template || p.d.template, b.think);
        const r = await renderChatPromptAsync(imagePrompt(p.d), { ...turn, tools: tools.length ? tools : undefined, think }, { cache: deps.templates, ggufTemplate: ggufTemplate(lease), budget: deps.templateBudget() });
        return { ...head(), message: { role: "assistant", content: "" }, done: true, _debug_info: { rendered_template: r.prompt, image_count: r.images.length } };
      } finally {
        lease?.release();
      }
    }
    if (messages.length === 0) {
      const reason = await loadOrUnload(deps, p, b.model, signal);
      return { ...head(), message: { role: "assistant", content: "" }, done: true, done_reason: reason };
    }

    // thinking, text and each tool call go out as they come, each in its own done:false chunk
    const out = b.stream !== false ? new NdjsonStream(reply) : undefined;
    const withLogprobs = () => {
      const lp = logprobs?.drain();
      return lp?.length ? { logprobs: lp } : {};
    };
    const chunk = (message: Record<string, unknown>) => out?.write({ ...head(), message: { role: "assistant", content: "", ...message }, done: false, ...withLogprobs() });
    try {
      const t = await runTurn(deps, p, turn, {
        thinking: (thinking) => chunk({ thinking }),
        content: (content) => chunk({ content }),
        toolCall: (call) => chunk({ tool_calls: [call] }),
      }, signal);
      const done = { done_reason: t.result.doneReason, done: true, ...stats(t.result, t.loadDuration, start) };
      if (!out) {
        const message = { role: "assistant", content: t.content, ...(t.thinking ? { thinking: t.thinking } : {}), ...(t.toolCalls.length ? { tool_calls: t.toolCalls } : {}) };
        return { ...head(), message, ...done, ...(logprobs ? { logprobs: logprobs.all } : {}) };
      }
      out.write({ ...head(), message: { role: "assistant", content: "" }, ...done, ...withLogprobs() });
      out.end();
    } catch (e) {
      if (signal.aborted) return reply.hijack();
      if (!out) throw e;
      out.fail(e);
    }
    return reply;
  });
}
