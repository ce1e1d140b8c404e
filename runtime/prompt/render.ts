/**
 * Ollama's execution of a prepared template on a chat (compat.md §6):
 * - suffix mode (`prompt` and `suffix` both set): `.Prompt`, `.Suffix`, `.Response` = "";
 * - messages mode (the template mentions `messages`): one execution on `.System` (every system message
 *   joined by a blank line), `.Messages` (consecutive messages of one role merged by a blank line,
 *   keeping the first one's tool calls; tool messages never merged), `.Tools`, `.Response` = "";
 * - legacy mode: one execution per completed turn (system/prompt/response), then a last one of the
 *   template cut after its first `{{ .Response }}`, so that a trailing assistant message is a prefill.
 *   Unlike Ollama, the last execution keeps every function and `define`, and an `if … else` around
 *   `{{ .Response }}` is cut cleanly instead of panicking.
 */
import { type ExecuteOptions, type Steps, TemplateBudget, runSteps } from "../../grammar/template/index.js";
import type { PreparedTemplate } from "./cache.js";
import { messageData, thinkData, toolData } from "./data.js";
import type { ChatMessage, Think, Tool } from "./types.js";

export interface PromptValues {
  messages: ChatMessage[];
  tools?: Tool[];
  think?: Think;
  /** suffix mode: both must be non-empty */
  prompt?: string;
  suffix?: string;
}

/** Merges consecutive messages of one role (tool messages excepted); returns the joined system text too. */
export function collate(messages: readonly ChatMessage[]): { system: string; messages: ChatMessage[] } {
  const system: string[] = [];
  const out: ChatMessage[] = [];
  for (const m of messages) {
    if (m.role === "system") system.push(m.content ?? "");
    const last = out[out.length - 1];
    if (last && last.role === m.role && m.role !== "tool") {
      out[out.length - 1] = { ...last, content: (last.content ?? "") + "\n\n" + (m.content ?? "") };
    } else out.push(m);
  }
  return { system: system.join("\n\n"), messages: out };
}

export function executePrompt(t: PreparedTemplate, values: PromptValues, opts: ExecuteOptions = {}): string {
  return runSteps(executePromptSteps(t, values, opts));
}

/** `executePrompt` as resumable work; every execution shares one budget (`opts.budget`, else a new one). */
export function* executePromptSteps(t: PreparedTemplate, values: PromptValues, opts: ExecuteOptions = {}): Steps<string> {
  opts = opts.budget ? opts : { ...opts, budget: new TemplateBudget() };
  const budget = opts.budget!;
  const think = thinkData(values.think);
  if (values.prompt && values.suffix) {
    return yield* t.template.steps({ Prompt: values.prompt, Suffix: values.suffix, Response: "", ...think }, opts);
  }
  const { system, messages } = collate(values.messages);
  if (t.messagesMode) {
    return yield* t.template.steps(
      {
        System: system,
        Messages: messages.map(messageData),
        Tools: (values.tools ?? []).map(toolData),
        Response: "",
        ...think,
      },
      opts,
    );
  }
  let out = "";
  const turns: { System: string; Prompt: string; Response: string }[] = [];
  let turn = { System: "", Prompt: "", Response: "" };
  const flush = () => {
    turns.push(turn);
    turn = { System: "", Prompt: "", Response: "" };
  };
  for (const m of messages) {
    switch (m.role) {
      case "system":
        if (turn.Prompt !== "" || turn.Response !== "") flush();
        turn.System = m.content ?? "";
        break;
      case "user":
        if (turn.Response !== "") flush();
        turn.Prompt = m.content ?? "";
        break;
      case "assistant":
        turn.Response = m.content ?? "";
        break;
    }
  }
  for (const done of turns) {
    out += yield* t.template.steps({ ...done, ...think }, opts);
    budget.output(out.length);
  }
  out += yield* t.legacyFinal.steps({ ...turn, ...think }, opts);
  budget.output(out.length);
  return out;
}
