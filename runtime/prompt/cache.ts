/**
 * Prepared templates: parsed once, with Ollama's `{{ .Response }}` append rule applied and the mode
 * known. A `TemplateCache` instance keeps them by template digest (least recently used out first);
 * whoever needs one (the runtime server) creates and owns it — there is no module-level cache.
 */
import { createHash } from "node:crypto";
import { parseTemplate, type Template } from "../../grammar/template/index.js";

export class PreparedTemplate {
  private legacyCut: Template | undefined;

  constructor(
    /** the template as executed: with `{{ .Response }}` appended when it mentions neither messages nor response */
    readonly template: Template,
    /** it mentions `messages` (case-insensitive): executed once on the whole chat */
    readonly messagesMode: boolean,
  ) {}

  /** Legacy mode's last execution: the template cut right after its first `{{ .Response }}`. */
  get legacyFinal(): Template {
    return (this.legacyCut ??= this.template.cutAfterField("Response"));
  }
}

/** Parses a template and applies Ollama's rules. Throws a positioned TemplateError. */
export function prepareTemplate(text: string): PreparedTemplate {
  let t = parseTemplate(text);
  if (!t.mentions("messages") && !t.mentions("response")) t = t.withFieldAppended("Response");
  return new PreparedTemplate(t, t.mentions("messages"));
}

export class TemplateCache {
  private readonly entries = new Map<string, PreparedTemplate>();

  constructor(readonly maxEntries = 64) {}

  /** The prepared template for `text`, keyed by `digest` (default: the text's sha256). */
  get(text: string, digest?: string): PreparedTemplate {
    const key = digest ?? "sha256:" + createHash("sha256").update(text).digest("hex");
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const prepared = prepareTemplate(text);
    this.entries.set(key, prepared);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return prepared;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
