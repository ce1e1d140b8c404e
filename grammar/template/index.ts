/**
 * A Go text/template engine: `parseTemplate(text)` → `Template`, `template.execute(data)` → string
 * (`executeAsync` gives the event loop its turn between slices of work; both within a budget).
 * Every function Ollama's templates can call is built in (Go's builtins plus `json`, `currentDate`,
 * `yesterdayDate`, `toTypeScriptType`). Errors are `TemplateError`s with line and column.
 * Value model and JSON-number decisions: see values.ts.
 */
import type { Tree } from "./ast.js";
import { SourceMap, isTemplateError } from "./errors.js";
import { TemplateBudget } from "./budget.js";
import { Executor, type Steps } from "./exec.js";
import { hasBuiltin } from "./funcs.js";
import { parse } from "./parser.js";
import { appendField, cutAfterField, identifiers } from "./transform.js";

export { TemplateError, isTemplateError, type TemplatePhase } from "./errors.js";
export { GoFloat, goStruct, withStringer, STRUCT, STRINGER, type StructType, type StructField } from "./values.js";
export { formatValue, sprintf } from "./fmt.js";
export { goJson } from "./escape.js";
export { MAX_TEMPLATE_DEPTH, type Steps } from "./exec.js";
export { TemplateLimitError } from "./errors.js";
export { TemplateBudget, BudgetExceeded, DEFAULT_LIMITS, type BudgetLimits } from "./budget.js";

export interface ExecuteOptions {
  /** the clock of `currentDate` / `yesterdayDate` (default: now, local time) */
  now?: () => Date;
  /** what the execution may cost; share one between the executions of a request (default: a fresh one) */
  budget?: TemplateBudget;
}

/** Runs resumable work straight through. */
export function runSteps<T>(work: Steps<T>): T {
  for (;;) {
    const r = work.next();
    if (r.done) return r.value;
  }
}

/** Runs resumable work, letting the event loop run other callbacks whenever it pauses. */
export async function runStepsAsync<T>(work: Steps<T>): Promise<T> {
  for (;;) {
    const r = work.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

export class Template {
  private ids: Set<string> | undefined;
  private lowerIds: Set<string> | undefined;

  /** @internal use parseTemplate */
  constructor(
    readonly source: string,
    private readonly tree: Tree,
    private readonly map: SourceMap,
  ) {}

  /** Executes the main template on `data` (a map, as in Ollama: absent keys print `<no value>`). */
  execute(data: unknown, opts: ExecuteOptions = {}): string {
    return runSteps(this.steps(data, opts));
  }

  /** `execute`, pausing for the event loop at the end of each of the budget's time slices. */
  executeAsync(data: unknown, opts: ExecuteOptions = {}): Promise<string> {
    return runStepsAsync(this.steps(data, opts));
  }

  /** The execution as resumable work, for callers that compose several (see runtime/prompt). */
  steps(data: unknown, opts: ExecuteOptions = {}): Steps<string> {
    const now = opts.now ?? (() => new Date());
    const budget = opts.budget ?? new TemplateBudget();
    return new Executor(this.tree, this.map, { now, output: (n) => budget.output(n) }, budget).run(this.tree.root, data);
  }

  /** Field and variable names the template mentions (as written, `define`s included). */
  identifiers(): ReadonlySet<string> {
    return (this.ids ??= identifiers(this.tree));
  }

  /** Whether `name` is mentioned as a field or variable, case-insensitively (Ollama's rule). */
  mentions(name: string): boolean {
    this.lowerIds ??= new Set([...this.identifiers()].map((s) => s.toLowerCase()));
    return this.lowerIds.has(name.toLowerCase());
  }

  /** Names of the templates defined with `define` or `block`. */
  definedTemplates(): string[] {
    return [...this.tree.defs.keys()];
  }

  /** A copy with `{{ .field }}` appended to the main template. */
  withFieldAppended(field: string): Template {
    return new Template(this.source, appendField(this.tree, field, this.source.length), this.map);
  }

  /** A copy cut right after the first action printing `.field` (see transform.ts). */
  cutAfterField(field: string): Template {
    return new Template(this.source, cutAfterField(this.tree, field), this.map);
  }
}

/** Parses a template; throws a positioned TemplateError. */
export function parseTemplate(text: string): Template {
  const map = new SourceMap(text);
  try {
    return new Template(text, parse(text, map, hasBuiltin), map);
  } catch (e) {
    if (isTemplateError(e)) throw e;
    // Only a pathological nesting depth (thousands of parentheses or blocks) gets here.
    throw map.error("parse", `template too complex: ${e instanceof Error ? e.message : String(e)}`, 0);
  }
}
