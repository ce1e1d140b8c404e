/**
 * Template errors: every error the engine raises, at parse or at execution time, is a TemplateError with
 * the 1-based line and column (in characters) of the offending token or action inside the template text.
 * (Go reports `name:LINE:COL` with a 0-based byte column, and only a line for parse errors; mf is more
 * precise.) `reason` is the bare message, without position, for callers that re-position the error
 * (the builder maps it into the Modelfile's TEMPLATE value).
 */
import { SyntaxError_ } from "../../core/errors.js";

export type TemplatePhase = "parse" | "exec";

export class TemplateError extends SyntaxError_ {
  readonly line: number;
  readonly column: number;
  /** 0-based offset in characters (UTF-16 code units) into the template text */
  readonly offset: number;
  readonly reason: string;
  readonly phase: TemplatePhase;

  constructor(phase: TemplatePhase, reason: string, pos: { line: number; column: number; offset: number }) {
    super("TEMPLATE_INVALID", `template: ${pos.line}:${pos.column}: ${reason}`, {
      detail: { line: pos.line, column: pos.column, phase },
    });
    this.line = pos.line;
    this.column = pos.column;
    this.offset = pos.offset;
    this.reason = reason;
    this.phase = phase;
  }
}

/** An execution stopped by its budget (budget.ts): the template's fault, or its data's, never the server's. */
export class TemplateLimitError extends TemplateError {
  constructor(
    readonly limit: "steps" | "output" | "time",
    reason: string,
    pos: { line: number; column: number; offset: number },
  ) {
    super("exec", reason, pos);
  }
}

export function isTemplateError(e: unknown): e is TemplateError {
  return e instanceof TemplateError;
}

/** Maps offsets to a 1-based line and a 1-based column in code points; built lazily, only when an error needs a position. */
export class SourceMap {
  private starts: number[] | undefined;
  constructor(readonly text: string) {}

  position(offset: number): { line: number; column: number; offset: number } {
    if (!this.starts) {
      const s = [0];
      for (let i = 0; i < this.text.length; i++) if (this.text.charCodeAt(i) === 10) s.push(i + 1);
      this.starts = s;
    }
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    // columns count characters (code points), as the Modelfile's positions do: a surrogate pair is one
    let column = 1;
    for (let i = starts[lo]!; i < offset; i++, column++) {
      const c = this.text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < offset && (this.text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    }
    return { line: lo + 1, column, offset };
  }

  error(phase: TemplatePhase, reason: string, offset: number): TemplateError {
    return new TemplateError(phase, reason, this.position(offset));
  }

  limitError(limit: TemplateLimitError["limit"], reason: string, offset: number): TemplateLimitError {
    return new TemplateLimitError(limit, reason, this.position(offset));
  }
}
