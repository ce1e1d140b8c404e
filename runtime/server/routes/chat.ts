/** `POST /api/chat`: the next assistant message of a conversation, tools and `_debug_render_only` included. */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import { type ChatMessage, type Tool, renderChatPromptAsync } from "../../prompt/index.js";
import { fitPrompt, promptBudget } from "../../options.js";
import { parseToolCalls } from "../../toolcalls.js";
import { NdjsonStream, clientSignal, createdAt } from "../http.js";
import { type RuntimeDeps, acquire, generate, ggufTemplate, loadOrUnload, needsGgufTemplate, prepare, promptTokens, stats } from "../infer.js";
import { imagePrompt, requireCapability } from "../models.js";
import { chatSchema } from "../schemas.js";
import { IMAGES_UNSUPPORTED } from "./generate.js";

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
  _debug_render_only?: boolean;
}

export function chatRoute(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: ChatBody }>("/api/chat", { schema: { body: chatSchema } }, async (req, reply) => {
    const start = process.hrtime.bigint();
    const b = req.body;
    const messages: ChatMessage[] = (b.messages ?? []).map((m) => ({ ...m, content: m.content ?? "" }) as ChatMessage);
    if (messages.some((m) => m.images?.length)) throw new RuntimeError("BAD_REQUEST", IMAGES_UNSUPPORTED);
    const tools = b.tools ?? [];
    const p = await prepare(deps, b);
    // tools are rendered through `.Tools`, and calls parsed, only with a template that knows them
    if (tools.length) requireCapability(b.model, b.template || p.d.template, "tools");
    const signal = clientSignal(req, reply);
    const head = () => ({ model: b.model, created_at: createdAt() });
    const chatReq = { messages, tools: tools.length ? tools : undefined, think: b.think, template: b.template };

    if (b._debug_render_only) {
      // without a template the GGUF's own chat template renders the prompt: that needs the loaded model
      const lease = needsGgufTemplate(p, b.template) ? await acquire(deps, p, b.model, signal) : undefined;
      try {
        const r = await renderChatPromptAsync(imagePrompt(p.d), chatReq, { cache: deps.templates, ggufTemplate: ggufTemplate(lease), budget: deps.templateBudget() });
        return { ...head(), message: { role: "assistant", content: "" }, done: true, _debug_info: { rendered_template: r.prompt, image_count: r.images.length } };
      } finally {
        lease?.release();
      }
    }
    if (messages.length === 0) {
      const reason = await loadOrUnload(deps, p, b.model, signal);
      return { ...head(), message: { role: "assistant", content: "" }, done: true, done_reason: reason };
    }

    const lease = await acquire(deps, p, b.model, signal);
    try {
      const m = lease.model;
      // rendered in slices: a template that loops until its budget is spent leaves the server responsive
      const rendered = await renderChatPromptAsync(imagePrompt(p.d), chatReq, {
        cache: deps.templates,
        ggufTemplate: ggufTemplate(lease),
        budget: deps.templateBudget(),
        // whole turns are dropped first, to the budget fitPrompt keeps, so that it never cuts the system message
        fit: { numCtx: promptBudget(m.contextSize), countTokens: (t) => m.tokenize(t, { special: true }).length + (m.bosToken !== null ? 1 : 0) },
      });
      const tokens = fitPrompt(promptTokens(lease, rendered.prompt, undefined), m.contextSize, p.run.numKeep);
      // with tools the answer is read whole, to tell a tool call from text
      const stream = b.stream !== false && !tools.length;
      const out = b.stream !== false ? new NdjsonStream(reply) : undefined;
      let text = "";
      try {
        const r = await generate(
          lease,
          p,
          tokens,
          (t) => (stream && out ? out.write({ ...head(), message: { role: "assistant", content: t }, done: false }) : (text += t)),
          signal,
        );
        const calls = tools.length ? parseToolCalls(text, tools.map((t) => t.function?.name).filter(Boolean)) : undefined;
        const message = calls ? { role: "assistant", content: "", tool_calls: calls } : { role: "assistant", content: text };
        const done = { done_reason: r.doneReason, done: true, ...stats(r, lease.loadDuration, start) };
        if (!out) return { ...head(), message, ...done };
        if (!stream && (calls || text)) out.write({ ...head(), message, done: false });
        out.write({ ...head(), message: { role: "assistant", content: "" }, ...done });
        out.end();
      } catch (e) {
        if (signal.aborted) return reply.hijack();
        if (!out) throw e;
        out.fail(e);
      }
      return reply;
    } finally {
      lease.release();
    }
  });
}
