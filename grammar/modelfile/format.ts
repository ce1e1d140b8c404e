/**
 * Writing a Modelfile back (`show --modelfile`), compat.md §1: FROM first, then DRAFT, ADAPTER,
 * TEMPLATE, RENDERER, PARSER, SYSTEM, PARAMETER (sorted by name; one line per `stop` entry), LICENSE,
 * MESSAGE, REQUIRES. Within a kind the order is kept, so "last wins" and accumulation mean the same.
 *
 * Quoting. A value is written bare unless it is empty, contains a newline, starts or ends with a space
 * or tab, starts or ends with `"`, or ends with `\r` (which would merge with the line break into CRLF).
 * A quoted value uses `"""` if it contains `"`, else `"`. Empty values print as `""`.
 *
 * What cannot be represented. The language has no escapes and a quoted value ends at the first line end
 * where the text, without trailing blanks, ends with the closing delimiter. So a value needing quotes
 * (here: one with a newline) in which some line other than the last, ignoring trailing spaces and tabs
 * (and the `\r` of a `\r\n`), ends with `"""` cannot be written in any form: `"""` would close there,
 * and `"` would close even earlier. Every other value round-trips. `formatModelfile` throws a
 * `SyntaxError_` (MODELFILE_INVALID) for such a value instead of writing a file that reads back
 * differently; `isRepresentable` lets callers check first. The property test's generator avoids exactly
 * these values, and a separate test checks `isRepresentable` against this description.
 *
 * Parameter names must be non-empty, lowercase, without blanks or line-end characters; message roles
 * must be system, user or assistant.
 */
import { SyntaxError_ } from "../../core/errors.js";
import type { Command, ModelfileAst } from "./ast.js";
import { isBlank, scanQuoted } from "./text.js";

const RANK: Record<Command["kind"], number> = {
  from: 0,
  draft: 1,
  adapter: 2,
  template: 3,
  renderer: 4,
  parser: 5,
  system: 6,
  parameter: 7,
  license: 8,
  message: 9,
  requires: 10,
};

function nameOf(c: Command): string {
  return c.kind === "parameter" ? c.name : "";
}

/** The commands in the order `formatModelfile` writes them (a stable sort). */
export function canonicalOrder(ast: ModelfileAst): ModelfileAst {
  const indexed = ast.commands.map((c, i) => ({ c, i }));
  indexed.sort((a, b) => {
    const r = RANK[a.c.kind] - RANK[b.c.kind];
    if (r) return r;
    const na = nameOf(a.c);
    const nb = nameOf(b.c);
    if (na !== nb) return na < nb ? -1 : 1;
    return a.i - b.i;
  });
  return { commands: indexed.map((x) => x.c) };
}

function needsQuotes(v: string): boolean {
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(v.length - 1);
  return v.includes("\n") || isBlank(first) || isBlank(last) || first === 34 || last === 34 || last === 13;
}

/** The value as written in a Modelfile, or undefined when no form reads back as `v` (see above). */
export function quoteValue(v: string): string | undefined {
  if (v === "") return '""';
  if (!needsQuotes(v)) return v;
  const written = v.includes('"') ? `"""${v}"""` : `"${v}"`;
  const scan = scanQuoted(written, 0);
  return scan.closed && scan.end === written.length && written.slice(scan.valueStart, scan.valueEnd) === v ? written : undefined;
}

/** True when `v` can be written as a Modelfile value that reads back unchanged. */
export function isRepresentable(v: string): boolean {
  return quoteValue(v) !== undefined;
}

function fail(message: string): never {
  throw new SyntaxError_("MODELFILE_INVALID", message);
}

function value(keyword: string, v: string): string {
  const q = quoteValue(v);
  if (q === undefined) fail(`cannot write the value of ${keyword} as a Modelfile: a line other than its last ends with """`);
  return q;
}

function line(c: Command): string {
  switch (c.kind) {
    case "parameter":
      if (!/^[^ \t\r\n]+$/.test(c.name) || c.name !== c.name.toLowerCase()) fail(`cannot write parameter name "${c.name}"`);
      return `PARAMETER ${c.name} ${value("PARAMETER", c.value)}`;
    case "message":
      if (c.role !== "system" && c.role !== "user" && c.role !== "assistant") fail(`cannot write message role "${String(c.role)}"`);
      return `MESSAGE ${c.role} ${value("MESSAGE", c.content)}`;
    default: {
      if (!(c.kind in RANK)) fail(`cannot write command kind "${String(c.kind)}"`);
      const kw = c.kind.toUpperCase();
      return `${kw} ${value(kw, c.value)}`;
    }
  }
}

/** Writes an AST back as Modelfile text (LF line ends, one trailing newline). */
export function formatModelfile(ast: ModelfileAst): string {
  const lines = canonicalOrder(ast).commands.map(line);
  return lines.length ? lines.join("\n") + "\n" : "";
}
