/** Rendering diagnostics like a compiler: position line, source line, caret line, hint. */
import type { Diagnostic } from "./ast.js";
import { LineMap } from "./text.js";

/**
 * Renders one diagnostic:
 *
 *     Modelfile:3:1: error: unknown instruction "FRM"
 *     FRM llama3
 *     ^~~
 *       hint: did you mean FROM?
 *
 * Tabs before the caret are kept so that it lines up in a terminal.
 */
export function formatDiagnostic(d: Diagnostic, sourceText: string, fileName = "Modelfile"): string {
  const map = new LineMap(sourceText);
  const out = [`${fileName}:${d.line}:${d.column}: ${d.severity}: ${d.message}`];
  if (d.line >= 1 && d.line <= map.lineCount) {
    const start = map.lineStart(d.line);
    const chars = [...sourceText.slice(start, map.lineEnd(d.line))];
    const col = Math.min(Math.max(d.column, 1), chars.length + 1);
    const pad = chars.slice(0, col - 1).map((c) => (c === "\t" ? "\t" : " ")).join("");
    const length = Math.max(1, Math.min(d.length, chars.length - (col - 1)));
    out.push(chars.join(""), pad + "^" + "~".repeat(length - 1));
  }
  if (d.hint) out.push(`  hint: ${d.hint}`);
  return out.join("\n");
}

/** All diagnostics, separated by blank lines. */
export function formatDiagnostics(ds: readonly Diagnostic[], sourceText: string, fileName = "Modelfile"): string {
  return ds.map((d) => formatDiagnostic(d, sourceText, fileName)).join("\n\n");
}

/** True when any diagnostic is an error. */
export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === "error");
}
