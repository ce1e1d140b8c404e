/**
 * What `/api/chat` and `/api/generate` turn into a prompt (compat.md §5–6):
 * - chat: the image's MESSAGEs, then the request's; the image's SYSTEM first, but only when the request's
 *   first message is not a system message;
 * - generate: the request's `system` (else the image's SYSTEM), the image's MESSAGEs (left out when the
 *   request carries `context`), then the prompt as a user message; with `suffix`, `.Prompt` + `.Suffix`;
 *   with `template`, that template runs on `[system] + [prompt]` only; `raw` is the prompt as is.
 * Images become `[img-N]` tags in their message (replacing a literal `[img]`, else prefixed).
 */
import type { ExecuteOptions } from "../../grammar/template/index.js";
import { prepareTemplate, type PreparedTemplate, type TemplateCache } from "./cache.js";
import { type PromptValues, collate, executePrompt } from "./render.js";
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

/** The renderer of a message list: the Go template, or the GGUF's chat template when there is none. */
function renderer(text: string | null | undefined, digest: string | undefined, values: Omit<PromptValues, "messages">, opts: RenderOptions): (messages: ChatMessage[]) => string {
  const go = (t: PreparedTemplate) => (messages: ChatMessage[]) => executePrompt(t, { ...values, messages }, opts);
  if (text || !opts.ggufTemplate) return go(prepared(text, digest, opts));
  const gguf = opts.ggufTemplate;
  return (messages) => gguf(collate(messages).messages) ?? go(prepared(undefined, undefined, opts))(messages);
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
  const msgs = chatMessages(image, req.messages);
  const render = renderer(req.template || image.template, req.template ? undefined : image.templateDigest, { tools: req.tools, think: req.think }, opts);
  let start = 0;
  let kept: ChatMessage[] = [];
  if (opts.fit && msgs.length > 0) {
    const last = msgs.length - 1;
    for (let i = 0; i <= last; i++) {
      const s = toolBlockStart(msgs, i);
      const system = msgs.slice(0, s).filter((m) => m.role === "system");
      const p = render([...system, ...msgs.slice(s)]);
      let n = opts.fit.countTokens(p);
      for (const m of msgs.slice(s)) n += (opts.fit.imageTokens ?? 0) * (m.images?.length ?? 0);
      if (n <= opts.fit.numCtx || i === last) {
        start = s;
        kept = system;
        break;
      }
    }
  }
  const tagged = tagImages(msgs.slice(start));
  const all = [...kept, ...tagged.messages];
  return { prompt: render(all), prefill: all[all.length - 1]?.role === "assistant", images: tagged.images };
}

export function renderGeneratePrompt(image: ImagePrompt, req: GenerateRequest, opts: RenderOptions = {}): RenderedPrompt {
  const images = req.images ?? [];
  if (req.raw) return { prompt: req.prompt, prefill: false, images };
  if (req.suffix) {
    const t = prepared(req.template || image.template, req.template ? undefined : image.templateDigest, opts);
    const prompt = executePrompt(t, { messages: [], prompt: req.prompt, suffix: req.suffix, think: req.think }, opts);
    return { prompt, prefill: false, images };
  }
  const msgs: ChatMessage[] = [];
  const system = req.system || image.system;
  if (system) msgs.push({ role: "system", content: system });
  if (!req.template && !req.hasContext) msgs.push(...(image.messages ?? []));
  const user = tagImages([{ role: "user", content: req.prompt, images }]).messages[0]!;
  msgs.push({ role: "user", content: user.content });
  const render = renderer(req.template || image.template, req.template ? undefined : image.templateDigest, { think: req.think }, opts);
  return { prompt: render(msgs), prefill: false, images };
}
