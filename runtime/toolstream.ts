/**
 * Tool calls read from a streaming answer: each call goes out as soon as its JSON is complete, with an
 * `id`, instead of after the whole answer. The shapes are those of toolcalls.ts (a bare call, a list,
 * `<tool_call>…</tool_call>` tags, `[TOOL_CALLS]`, a ```json fence); text that is not a call is content,
 * streamed as it comes, except the few characters that could still begin a `<tool_call>` tag.
 */
import { randomBytes } from "node:crypto";
import type { ToolCall } from "./prompt/index.js";
import { asCall } from "./toolcalls.js";
import { partialSuffix } from "./thinking.js";

export interface ToolStreamOut {
  content: string;
  calls: ToolCall[];
}

const OPENERS = ["<tool_call>", "[TOOL_CALLS]", "```json", "```", "{", "["];
/** What may stand between calls in a run of them. */
const SEPARATORS = ["<tool_call>", "</tool_call>", "[TOOL_CALLS]", "```json", "```", ",", "[", "]"];
const TAG = "<tool_call>";

export function newToolCallId(): string {
  return `call_${randomBytes(9).toString("base64url")}`;
}

export class ToolCallStream {
  private mode: "start" | "text" | "calls" | "rest" = "start";
  private buf = "";
  /** text consumed in calls mode before the first call: content again if no call follows */
  private consumed = "";
  private emitted = 0;
  private readonly names: ReadonlySet<string>;

  constructor(toolNames: readonly string[]) {
    this.names = new Set(toolNames);
  }

  get callCount(): number {
    return this.emitted;
  }

  push(text: string): ToolStreamOut {
    this.buf += text;
    return this.step(false);
  }

  flush(): ToolStreamOut {
    return this.step(true);
  }

  private step(final: boolean): ToolStreamOut {
    const out: ToolStreamOut = { content: "", calls: [] };
    for (;;) {
      if (this.mode === "rest") {
        out.content += this.buf;
        this.buf = "";
        return out;
      }
      if (this.mode === "start") {
        const t = this.buf.trimStart();
        if (t === "") {
          if (final) {
            out.content += this.buf;
            this.buf = "";
          }
          return out;
        }
        if (OPENERS.some((o) => t.startsWith(o))) {
          this.mode = "calls";
          this.consumed = this.buf.slice(0, this.buf.length - t.length);
          this.buf = t;
          continue;
        }
        if (!final && OPENERS.some((o) => o.startsWith(t))) return out;
        this.mode = "text";
        continue;
      }
      if (this.mode === "text") {
        // a <tool_call> tag may still begin the calls after some text
        const i = this.buf.indexOf(TAG);
        if (i >= 0) {
          out.content += this.buf.slice(0, i);
          this.buf = this.buf.slice(i);
          this.consumed = "";
          this.mode = "calls";
          continue;
        }
        const keep = final ? 0 : partialSuffix(this.buf, TAG);
        out.content += this.buf.slice(0, this.buf.length - keep);
        this.buf = this.buf.slice(this.buf.length - keep);
        return out;
      }
      // calls: separators, then a complete object, again and again
      const t = this.buf.trimStart();
      const ws = this.buf.slice(0, this.buf.length - t.length);
      const sep = SEPARATORS.find((s) => t.startsWith(s));
      if (sep) {
        this.consumed += ws + sep;
        this.buf = t.slice(sep.length);
        continue;
      }
      if (t === "" || (!final && SEPARATORS.some((s) => s.startsWith(t)))) {
        // whitespace after the last call (a grammar's trailing space, a newline after </tool_call>) ends it
        if (final && t === "" && this.emitted) this.buf = "";
        else if (final) this.giveUp(out);
        return out;
      }
      if (t[0] === "{") {
        const end = objectEnd(t);
        if (end < 0) {
          if (final) this.giveUp(out);
          return out;
        }
        let value: unknown;
        try {
          value = JSON.parse(t.slice(0, end));
        } catch {
          value = undefined;
        }
        const call = asCall(value, this.emitted, this.names);
        if (!call) {
          this.giveUp(out);
          continue;
        }
        call.id = newToolCallId();
        out.calls.push(call);
        this.emitted++;
        this.consumed = "";
        this.buf = t.slice(end);
        continue;
      }
      this.giveUp(out);
    }
  }

  /** What followed is not a call: content from here on (and what was consumed, if no call came). */
  private giveUp(out: ToolStreamOut): void {
    out.content += (this.emitted ? "" : this.consumed) + this.buf;
    this.buf = "";
    this.consumed = "";
    this.mode = "rest";
  }
}

/** The index just past the JSON object that opens `s`, or -1 when it is not complete yet. */
function objectEnd(s: string): number {
  let depth = 0;
  let inStr = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === "\\") i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}
