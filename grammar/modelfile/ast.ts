/**
 * The Modelfile AST: what `parseModelfile` returns and `formatModelfile` writes back. Values are exactly
 * as the user wrote them (quotes removed, unquoted values trimmed). `loc` is where the command starts
 * and `valueLoc` where its value starts; both are ignored when two ASTs are compared (see `stripLoc`).
 */

export interface Loc {
  /** 1-based line */
  line: number;
  /** 1-based column, in characters of the decoded text */
  column: number;
}

export type TextCommandKind =
  | "from"
  | "adapter"
  | "template"
  | "system"
  | "license"
  | "requires"
  | "draft"
  | "renderer"
  | "parser";

export interface TextCommand {
  kind: TextCommandKind;
  value: string;
  loc?: Loc;
  valueLoc?: Loc;
}

export interface ParameterCommand {
  kind: "parameter";
  /** parameter name, lowercased */
  name: string;
  /** the raw value text; typed by `typeParameter` in params.ts */
  value: string;
  loc?: Loc;
  nameLoc?: Loc;
  valueLoc?: Loc;
}

export type MessageRole = "system" | "user" | "assistant";

export interface MessageCommand {
  kind: "message";
  role: MessageRole;
  content: string;
  loc?: Loc;
  valueLoc?: Loc;
}

export type Command = TextCommand | ParameterCommand | MessageCommand;

export interface ModelfileAst {
  commands: Command[];
}

export type Severity = "error" | "warning";

export interface Diagnostic {
  severity: Severity;
  line: number;
  column: number;
  /** characters to underline (at least 1) */
  length: number;
  message: string;
  /** e.g. `did you mean FROM?` */
  hint?: string;
}

export interface ParseResult {
  ast: ModelfileAst;
  diagnostics: Diagnostic[];
}

/** A copy of the AST without positions, for comparisons. */
export function stripLoc(ast: ModelfileAst): ModelfileAst {
  return {
    commands: ast.commands.map((c) => {
      const { loc: _l, valueLoc: _v, ...rest } = c as Command & { nameLoc?: Loc };
      delete (rest as { nameLoc?: Loc }).nameLoc;
      return rest as Command;
    }),
  };
}
