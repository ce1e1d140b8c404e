/**
 * Thinking, separated from the answer. A template that prints `.Thinking` between two tags (`<think>{{
 * .Thinking }}</think>`) tells which tags the model writes its reasoning in, as Ollama infers them; such
 * a model has the `thinking` capability. `ThinkingSplitter` reads the answer as it streams and routes
 * the text between the tags to `thinking`, the rest to `content`, holding back only what could still be
 * the start of a tag.
 */

export interface ThinkTags {
  open: string;
  close: string;
}

/** The tags around `.Thinking` in a template's text, or undefined when it prints no thinking. */
export function inferThinkTags(template: string | null | undefined): ThinkTags | undefined {
  if (!template) return undefined;
  const re = /(\S*?)\s*\{\{-?\s*\.Thinking\s*-?\}\}\s*(\S*)/g;
  for (const m of template.matchAll(re)) {
    const open = lastTag(m[1]!);
    const close = firstTag(m[2]!);
    if (open && close) return { open, close };
  }
  return undefined;
}

/** The last `<…>` tag of a text that ends with one (after template actions are removed). */
function lastTag(s: string): string | undefined {
  const t = s.replace(/\{\{[^}]*\}\}/g, "");
  const m = /(<[^<>\s]+>|\[[A-Z_]+\])$/.exec(t);
  return m?.[1];
}

function firstTag(s: string): string | undefined {
  const t = s.replace(/\{\{[^}]*\}\}/g, "");
  const m = /^(<\/?[^<>\s]+>|\[\/?[A-Z_]+\])/.exec(t);
  return m?.[1];
}

export interface SplitText {
  thinking: string;
  content: string;
}

type State = "start" | "thinking" | "afterThinking" | "content";

export class ThinkingSplitter {
  private state: State;
  private buf = "";

  /** `startsInside`: the prompt already ends with the opening tag, so the answer begins in thinking. */
  constructor(private readonly tags: ThinkTags, startsInside = false) {
    this.state = startsInside ? "thinking" : "start";
  }

  /** The next piece of the answer; returns what is known to be thinking and content so far. */
  push(text: string): SplitText {
    this.buf += text;
    const out: SplitText = { thinking: "", content: "" };
    for (;;) {
      if (this.state === "start") {
        const t = this.buf.replace(/^\s+/, "");
        if (t === "") return out;
        if (t.startsWith(this.tags.open)) {
          this.buf = t.slice(this.tags.open.length);
          this.state = "thinking";
          continue;
        }
        if (this.tags.open.startsWith(t)) return out; // could still be the tag
        this.state = "content";
        continue;
      }
      if (this.state === "thinking") {
        const i = this.buf.indexOf(this.tags.close);
        if (i >= 0) {
          out.thinking += this.buf.slice(0, i);
          this.buf = this.buf.slice(i + this.tags.close.length);
          this.state = "afterThinking";
          continue;
        }
        const keep = partialSuffix(this.buf, this.tags.close);
        out.thinking += this.buf.slice(0, this.buf.length - keep);
        this.buf = this.buf.slice(this.buf.length - keep);
        return out;
      }
      if (this.state === "afterThinking") {
        const t = this.buf.replace(/^\s+/, "");
        if (t === "") {
          this.buf = "";
          return out;
        }
        this.buf = t;
        this.state = "content";
        continue;
      }
      out.content += this.buf;
      this.buf = "";
      return out;
    }
  }

  /** The end of the answer: whatever was held back. */
  flush(): SplitText {
    const rest = this.buf;
    this.buf = "";
    if (this.state === "thinking") return { thinking: rest, content: "" };
    if (this.state === "start" || this.state === "afterThinking") return { thinking: "", content: rest.trim() ? rest : "" };
    return { thinking: "", content: rest };
  }
}

/** How many characters at the end of `s` are a proper prefix of `tag`. */
export function partialSuffix(s: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, s.length); n > 0; n--) if (tag.startsWith(s.slice(s.length - n))) return n;
  return 0;
}
