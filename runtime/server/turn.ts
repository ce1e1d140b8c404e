/**
 * One assistant turn of a chat, as every chat-shaped API needs it (`/api/chat`, `/v1/chat/completions`,
 * `/v1/responses`, `/v1/messages`): render the conversation, generate, and hand the answer to a sink as
 * it streams, already separated into thinking, content and tool calls (each call as soon as it is
 * complete, with an id). The routes only translate these events into their own wire format.
 *
 * Thinking: a model has it when its template prints `.Thinking` between tags. `think: true` (or a
 * level) on a model without it is a 400, as in Ollama. With `think` omitted, a thinking model thinks and
 * its thinking is separated (Ollama's current default); `think: false` asks the template not to think,
 * and nothing is separated.
 */
import { RuntimeError } from "../../core/errors.js";
import type { GenerationResult } from "../engine/generation.js";
import { type ChatMessage, type Think, type Tool, type ToolCall, renderChatPromptAsync } from "../prompt/index.js";
import { fitPrompt, promptBudget } from "../options.js";
import type { Lease } from "../scheduler.js";
import { ThinkingSplitter, inferThinkTags } from "../thinking.js";
import { ToolCallStream } from "../toolstream.js";
import { IMAGES_UNSUPPORTED, type Logprobs, type Prepared, type RuntimeDeps, acquire, generate, ggufTemplate, promptTokens } from "./infer.js";
import { imagePrompt, requireCapability } from "./models.js";

export interface TurnRequest {
  model: string;
  messages: ChatMessage[];
  tools?: Tool[];
  think?: Think | null;
  template?: string;
  logprobs?: Logprobs;
}

export interface TurnSink {
  thinking?(text: string): void;
  content(text: string): void;
  toolCall?(call: ToolCall): void;
}

export interface TurnResult {
  result: GenerationResult;
  loadDuration: number;
  thinking: string;
  content: string;
  toolCalls: ToolCall[];
}

/** The think value the template sees, and the tags to separate by (none: nothing is separated). */
export function thinkPlan(model: string, template: string | undefined, think: Think | null | undefined): { think: Think | undefined; tags: ReturnType<typeof inferThinkTags> } {
  const tags = inferThinkTags(template);
  const wants = think === true || (typeof think === "string" && think !== "");
  if (wants && !tags) requireCapability(model, template, "thinking");
  if (think === false) return { think: false, tags: undefined };
  if (think === undefined || think === null) return { think: tags ? true : undefined, tags };
  return { think, tags };
}

/** Checks what can be checked before a model is loaded (tools, thinking); throws the API's 400s. */
export function checkTurn(req: TurnRequest, p: Prepared): void {
  if (req.messages.some((m) => m.images?.length)) throw new RuntimeError("BAD_REQUEST", IMAGES_UNSUPPORTED);
  const template = req.template || p.d.template;
  if (req.tools?.length) requireCapability(req.model, template, "tools");
  thinkPlan(req.model, template, req.think);
}

export async function runTurn(deps: RuntimeDeps, p: Prepared, req: TurnRequest, sink: TurnSink, signal: AbortSignal): Promise<TurnResult> {
  const tools = req.tools?.length ? req.tools : undefined;
  const plan = thinkPlan(req.model, req.template || p.d.template, req.think);
  const lease: Lease = await acquire(deps, p, req.model, signal);
  try {
    const m = lease.model;
    // rendered in slices: a template that loops until its budget is spent leaves the server responsive
    const rendered = await renderChatPromptAsync(imagePrompt(p.d), { messages: req.messages, tools, think: plan.think, template: req.template }, {
      cache: deps.templates,
      ggufTemplate: ggufTemplate(lease),
      budget: deps.templateBudget(),
      // whole turns are dropped first, to the budget fitPrompt keeps, so that it never cuts the system message
      fit: { numCtx: promptBudget(m.contextSize), countTokens: (t) => m.tokenize(t, { special: true }).length + (m.bosToken !== null ? 1 : 0) },
    });
    const tokens = fitPrompt(promptTokens(lease, rendered.prompt, undefined), m.contextSize, p.run.numKeep);
    const splitter = plan.tags ? new ThinkingSplitter(plan.tags, rendered.prompt.trimEnd().endsWith(plan.tags.open)) : undefined;
    const calls = tools ? new ToolCallStream(tools.map((t) => t.function?.name).filter(Boolean)) : undefined;
    const out: TurnResult = { result: undefined as unknown as GenerationResult, loadDuration: lease.loadDuration, thinking: "", content: "", toolCalls: [] };

    const deliver = (r: { content: string; calls: ToolCall[] }): void => {
      if (r.content) {
        out.content += r.content;
        sink.content(r.content);
      }
      for (const c of r.calls) {
        out.toolCalls.push(c);
        sink.toolCall?.(c);
      }
    };
    const emit = (split: { thinking: string; content: string }): void => {
      if (split.thinking) {
        out.thinking += split.thinking;
        sink.thinking?.(split.thinking);
      }
      if (split.content) deliver(calls ? calls.push(split.content) : { content: split.content, calls: [] });
    };
    out.result = await generate(lease, p, tokens, (t) => emit(splitter ? splitter.push(t) : { thinking: "", content: t }), signal, req.logprobs?.request);
    if (splitter) emit(splitter.flush());
    if (calls) deliver(calls.flush());
    return out;
  } finally {
    lease.release();
  }
}
