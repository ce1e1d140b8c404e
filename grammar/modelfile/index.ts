/**
 * The Modelfile grammar's facade. Pure: no files, no environment. `parseModelfile` never throws.
 *
 *   decodeModelfile(bytes) → text                 (UTF-8 ± BOM, UTF-16 LE/BE with BOM)
 *   parseModelfile(text)   → { ast, diagnostics } (syntax + parameter typing + "no FROM line")
 *   formatModelfile(ast)   → text                 (canonical order and quoting)
 *   formatDiagnostic(d, text, fileName) → compiler-style message with caret and hint
 */
import type { Diagnostic, ParseResult } from "./ast.js";
import { typeParameters } from "./params.js";
import { LineMap } from "./text.js";
import { modelfileLexer } from "./tokens.js";
import { AstBuilder, parser } from "./visitor.js";

export * from "./ast.js";
export { decodeModelfile } from "./text.js";
export { formatDiagnostic, formatDiagnostics, hasErrors } from "./diagnostics.js";
export { formatModelfile, canonicalOrder, quoteValue, isRepresentable } from "./format.js";
export {
  PARAMETERS,
  PARAMETER_NAMES,
  parameterSpec,
  typeParameter,
  typeParameters,
  validateOptions,
  type ParamSpec,
  type ParamType,
  type Typed,
  type TypedParameters,
  type OptionsResult,
} from "./params.js";
export { editDistance, nearest } from "./suggest.js";

function byPosition(a: Diagnostic, b: Diagnostic): number {
  return a.line - b.line || a.column - b.column;
}

function parse(text: string): ParseResult {
  const map = new LineMap(text);
  const lexed = modelfileLexer.tokenize(text);
  parser.input = lexed.tokens;
  const cst = parser.modelfile();
  const builder = new AstBuilder(map);
  for (const e of lexed.errors) {
    builder.report("error", e.offset, e.offset + Math.max(1, e.length), `unexpected character "${text.slice(e.offset, e.offset + 1)}"`);
  }
  for (const e of parser.errors) {
    const off = Number.isFinite(e.token.startOffset) ? e.token.startOffset : text.length;
    builder.report("error", off, off + Math.max(1, e.token.image.length), `syntax error: ${e.message}`);
  }
  builder.visit(cst);
  const ast = { commands: builder.commands };
  const diagnostics = [...builder.diagnostics, ...typeParameters(ast.commands).diagnostics];
  if (!ast.commands.some((c) => c.kind === "from") && !builder.fromMayBeHidden) {
    diagnostics.push({ severity: "error", line: 1, column: 1, length: 1, message: "no FROM line", hint: "add a line such as FROM llama3.2" });
  }
  diagnostics.sort(byPosition);
  return { ast, diagnostics };
}

/** Parses Modelfile text. Never throws: any problem, even an internal one, becomes a diagnostic. */
export function parseModelfile(text: string): ParseResult {
  try {
    return parse(text);
  } catch (e) {
    const message = `internal error while parsing: ${e instanceof Error ? e.message : String(e)}`;
    return { ast: { commands: [] }, diagnostics: [{ severity: "error", line: 1, column: 1, length: 1, message }] };
  }
}
