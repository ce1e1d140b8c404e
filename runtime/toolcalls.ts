/**
 * Tool calls in a model's answer (an adapter beside runtime/prompt, which renders tools but does not
 * parse calls). When a request carries tools and the template can show tool calls, an answer that is a
 * JSON call — `{"name", "arguments"}` (or `"parameters"`), a list of them, or either wrapped in tags
 * such as `<tool_call>…</tool_call>` or `[TOOL_CALLS]` — becomes `message.tool_calls`.
 */
import type { ToolCall } from "./prompt/index.js";

/** One call object (`{name, arguments}`, `{function: {…}}`, `parameters` for `arguments`), or undefined. */
export function asCall(v: unknown, index: number, names: ReadonlySet<string>): ToolCall | undefined {
  if (!v || typeof v !== "object" || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const inner = o.function && typeof o.function === "object" ? (o.function as Record<string, unknown>) : o;
  const name = inner.name;
  const args = inner.arguments ?? inner.parameters ?? {};
  if (typeof name !== "string" || !names.has(name)) return undefined;
  const parsed = typeof args === "string" ? safeParse(args) : args;
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  return { function: { index, name, arguments: parsed as Record<string, unknown> } };
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** The tool calls of an answer, or undefined when it is plain text. */
export function parseToolCalls(text: string, toolNames: readonly string[]): ToolCall[] | undefined {
  const names = new Set(toolNames);
  if (!names.size) return undefined;
  const bodies: unknown[] = [];
  const tagged = [...text.matchAll(/<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g)].map((m) => m[1]!.trim());
  if (tagged.length) for (const t of tagged) bodies.push(safeParse(t));
  else bodies.push(safeParse(text.trim().replace(/^\[TOOL_CALLS\]\s*/, "").replace(/^```(?:json)?\s*|\s*```$/g, "")));
  const calls: ToolCall[] = [];
  for (const b of bodies.flatMap((x) => (Array.isArray(x) ? x : [x]))) {
    const c = asCall(b, calls.length, names);
    if (!c) return undefined;
    calls.push(c);
  }
  return calls.length ? calls : undefined;
}
