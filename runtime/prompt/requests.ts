/**
 * What `/api/chat` and `/api/generate` turn into a prompt (compat.md §5–6):
 * - chat: the image's MESSAGEs, then the request's; the image's SYSTEM first, but only when the request's
 *   first message is not a system message;
 * - generate: the request's `system` (else the image's SYSTEM), the image's MESSAGEs (left out when the
 *   request carries `context`), then the prompt as a user message; with `suffix`, `.Prompt` + `.Suffix`;
 *   with `template`, that template runs on `[system] + [prompt]` only; `raw` is the prompt as is.
 * Images become `[img-N]` tags in their message (replacing a literal `[img]`, else prefixed).
 */
import { type ExecuteOptions, type Steps, TemplateBudget, runSteps, runStepsAsync } from "../../grammar/template/index.js";
import { prepareTemplate, type PreparedTemplate, type TemplateCache } from "./cache.js";
import { type PromptValues, collate, executePromptSteps } from "./render.js";
import type { ChatMessage, ChatRequest, GenerateRequest, ImagePrompt, RenderedPrompt } from "./types.js";

/** What an image without TEMPLATE renders: the prompt as is. */
export const DEFAULT_TEMPLATE = "{{ .Prompt }}";

export interface RenderOptions extends ExecuteOptions {
  /** parse cache (keyed by the template's digest); without one, every call parses */
  cache?: TemplateCache;
  /**
   * Ollama's truncation: drop the oldest messages (never system messages, never the last message, never
   * a tool result without the assistant turn that called it) until the prompt fits in `numCtx` tokens.
   */
  fit?: { numCtx: number; countTokens: (text: string) => number; imageTokens?: number };
  /**
   * When neither the request nor the image has a template: the GGUF's own chat template (compat.md §6),
   * rendering the messages; undefined when the GGUF has none, leaving the prompt as is.
   */
  ggufTemplate?: (messages: ChatMessage[]) => string | undefined;
}

type Renderer = (messages: ChatMessage[]) => Steps<string>;

/** The renderer of a message list: the Go template, or the GGUF's chat template when there is none. */
function renderer(text: string | null | undefined, digest: string | undefined, values: Omit<PromptValues, "messages">, opts: RenderOptions): Renderer {
  const go = (t: PreparedTemplate): Renderer => (messages) => executePromptSteps(t, { ...values, messages }, opts);
  if (text || !opts.ggufTemplate) return go(prepared(text, digest, opts));
  const gguf = opts.ggufTemplate;
  return function* (messages) {
    return gguf(collate(messages).messages) ?? (yield* go(prepared(undefined, undefined, opts))(messages));
  };
}

/** One budget for every execution of one rendering (the caller's, else a new one). */
function withBudget(opts: RenderOptions): RenderOptions {
  return opts.budget ? opts : { ...opts, budget: new TemplateBudget() };
}

function prepared(text: string | null | undefined, digest: string | undefined, opts: RenderOptions): PreparedTemplate {
  const t = text ? text : DEFAULT_TEMPLATE;
  return opts.cache ? opts.cache.get(t, text ? digest : undefined) : prepareTemplate(t);
}

/** Tags images as `[img-N]`, numbering from `first`; returns new messages and the images in order. */
export function tagImages(messages: readonly ChatMessage[], first = 0): { messages: ChatMessage[]; images: string[] } {
  const images: string[] = [];
  const out = messages.map((m) => {
    if (!m.images?.length) return m;
    let prefix = "";
    let content = m.content ?? "";
    for (const img of m.images) {
      const tag = `[img-${first + images.length}]`;
      images.push(img);
      if (content.includes("[img]")) content = content.replace("[img]", tag);
      else prefix += tag;
    }
    return { ...m, content: prefix + content };
  });
  return { messages: out, images };
}

/** Where truncation may start: a run of tool results starts at the assistant message that called them. */
function toolBlockStart(msgs: readonly ChatMessage[], i: number): number {
  if (i <= 0 || i >= msgs.length || msgs[i]!.role !== "tool") return i;
  let start = i;
  while (start > 0 && msgs[start - 1]!.role === "tool") start--;
  const a = start - 1;
  return a >= 0 && msgs[a]!.role === "assistant" && (msgs[a]!.tool_calls?.length ?? 0) > 0 ? a : i;
}

/** The messages `/api/chat` renders, image MESSAGEs and SYSTEM included. */
export function chatMessages(image: ImagePrompt, requestMessages: readonly ChatMessage[]): ChatMessage[] {
  const msgs = [...(image.messages ?? []), ...requestMessages];
  if (image.system && requestMessages[0]?.role !== "system") msgs.unshift({ role: "system", content: image.system });
  return msgs;
}

export function renderChatPrompt(image: ImagePrompt, req: ChatRequest, opts: RenderOptions = {}): RenderedPrompt {
  return runSteps(renderChatPromptSteps(image, req, opts));
}

/** `renderChatPrompt`, letting the event loop run between slices of template work. */
export function renderChatPromptAsync(image: ImagePrompt, req: ChatRequest, opts: RenderOptions = {}): Promise<RenderedPrompt> {
  return runStepsAsync(renderChatPromptSteps(image, req, opts));
}

function* renderChatPromptSteps(image: ImagePrompt, req: ChatRequest, opts: RenderOptions): Steps<RenderedPrompt> {
  opts = withBudget(opts);
  const msgs = chatMessages(image, req.messages);
  const render = renderer(req.template || image.template, req.template ? undefined : image.templateDigest, { tools: req.tools, think: req.think }, opts);
  let start = 0;
  let kept: ChatMessage[] = [];
  if (opts.fit && msgs.length > 0) {
    const fit = opts.fit;
    const last = msgs.length - 1;
    const systemBefore = (s: number) => msgs.slice(0, s).filter((m) => m.role === "system");
    const fits = function* (i: number): Steps<boolean> {
      const s = toolBlockStart(msgs, i);
      const p = yield* render([...systemBefore(s), ...msgs.slice(s)]);
      let n = fit.countTokens(p);
      for (const m of msgs.slice(s)) n += (fit.imageTokens ?? 0) * (m.images?.length ?? 0);
      yield; // counting tokens took a while: others may run before the next rendering
      return n <= fit.numCtx;
    };
    // Ollama scans from the oldest message for the first start that fits (the last message stays even if
    // it alone does not). Dropping messages only shortens the prompt, so a binary search finds the same
    // start in log n renderings instead of n, which keeps a long chat within the template budget.
    let lo = 0;
    if (!(yield* fits(0))) {
      lo = 1;
      let hi = last;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (yield* fits(mid)) hi = mid;
        else lo = mid + 1;
      }
    }
    start = toolBlockStart(msgs, lo);
    kept = systemBefore(start);
  }
  const tagged = tagImages(msgs.slice(start));
  const all = [...kept, ...tagged.messages];
  return { prompt: yield* render(all), prefill: all[all.length - 1]?.role === "assistant", images: tagged.images };
}

export function renderGeneratePrompt(image: ImagePrompt, req: GenerateRequest, opts: RenderOptions = {}): RenderedPrompt {
  return runSteps(renderGeneratePromptSteps(image, req, opts));
}

/** `renderGeneratePrompt`, letting the event loop run between slices of template work. */
export function renderGeneratePromptAsync(image: ImagePrompt, req: GenerateRequest, opts: RenderOptions = {}): Promise<RenderedPrompt> {
  return runStepsAsync(renderGeneratePromptSteps(image, req, opts));
}

function* renderGeneratePromptSteps(image: ImagePrompt, req: GenerateRequest, opts: RenderOptions): Steps<RenderedPrompt> {
  opts = withBudget(opts);
  const images = req.images ?? [];
  if (req.raw) return { prompt: req.prompt, prefill: false, images };
  if (req.suffix) {
    const t = prepared(req.template || image.template, req.template ? undefined : image.templateDigest, opts);
    const prompt = yield* executePromptSteps(t, { messages: [], prompt: req.prompt, suffix: req.suffix, think: req.think }, opts);
    return { prompt, prefill: false, images };
  }
  const msgs: ChatMessage[] = [];
  const system = req.system || image.system;
  if (system) msgs.push({ role: "system", content: system });
  if (!req.template && !req.hasContext) msgs.push(...(image.messages ?? []));
  const user = tagImages([{ role: "user", content: req.prompt, images }]).messages[0]!;
  msgs.push({ role: "user", content: user.content });
  const render = renderer(req.template || image.template, req.template ? undefined : image.templateDigest, { think: req.think }, opts);
  return { prompt: yield* render(msgs), prefill: false, images };
}
