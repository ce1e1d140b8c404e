/**
 * CST → AST. Builds the commands with their positions and reports the syntax-level diagnostics: unknown
 * instructions (with the nearest command as a hint), missing values, unterminated quotes (where they
 * started), text after a closing quote, message roles, REQUIRES versions.
 */
import type { CstNode, IToken } from "chevrotain";
import type { Command, Diagnostic, MessageRole, Severity, TextCommandKind } from "./ast.js";
import { ModelfileParser } from "./parser.js";
import { nearest } from "./suggest.js";
import { LineMap, contentEnd } from "./text.js";
import { COMMAND_NAMES, type QuotedPayload, type UnterminatedPayload } from "./tokens.js";

export const parser = new ModelfileParser();
const BaseVisitor = parser.getBaseCstVisitorConstructor();

type Children = Record<string, (IToken | CstNode)[] | undefined>;

const ROLES: readonly MessageRole[] = ["system", "user", "assistant"];
const VERSION = /^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$/;

interface Value {
  text: string;
  offset: number;
}

export class AstBuilder extends BaseVisitor {
  readonly commands: Command[] = [];
  readonly diagnostics: Diagnostic[] = [];
  /** set when an error makes "no FROM line" likely a consequence (a FROM typo, a runaway quote) */
  fromMayBeHidden = false;

  constructor(private readonly map: LineMap) {
    super();
    this.validateVisitor();
  }

  report(severity: Severity, offset: number, end: number, message: string, hint?: string): void {
    const { line, column } = this.map.loc(offset);
    const length = this.map.spanLength(offset, end);
    this.diagnostics.push(hint ? { severity, line, column, length, message, hint } : { severity, line, column, length, message });
  }

  private reportToken(t: IToken, message: string, hint?: string): void {
    this.report("error", t.startOffset, t.startOffset + t.image.length, message, hint);
  }

  modelfile(ctx: Children): void {
    for (const n of (ctx["instruction"] ?? []) as CstNode[]) this.visit(n);
  }

  instruction(ctx: Children): void {
    const child = Object.values(ctx).find((v) => v && v.length)?.[0] as CstNode | undefined;
    if (child) this.visit(child);
  }

  /** The value of an AnyValue token, or undefined after reporting an unterminated quote. */
  private value(t: IToken): Value | undefined {
    const name = t.tokenType.name;
    if (name === "QuotedValue") {
      const p = t.payload as QuotedPayload;
      if (p.triple) this.warnRunaway(t);
      return { text: p.value, offset: p.valueStart };
    }
    if (name === "UnterminatedValue") {
      const p = t.payload as UnterminatedPayload;
      const delim = p.triple ? '"""' : '"';
      this.fromMayBeHidden = true;
      if (p.junkAt !== undefined) {
        const end = contentEnd(this.map.text, p.junkAt);
        this.report("error", p.junkAt, end, "unexpected text after closing quote",
          `a quoted value must end at the end of its line${p.triple ? "" : `; use """…""" for a value with quotes inside`}`);
      } else {
        this.report("error", t.startOffset, t.startOffset + delim.length, `unterminated quote: ${delim} opened here is never closed`,
          `end the value with ${delim} at the end of a line`);
      }
      return undefined;
    }
    return { text: t.image, offset: t.startOffset };
  }

  /** `TEMPLATE """x""" extra` followed, lines later, by a line ending in `"""`: legal but rarely meant. */
  private warnRunaway(t: IToken): void {
    const text = this.map.text;
    const firstEnd = contentEnd(text, t.startOffset);
    if (t.startOffset + t.image.length <= firstEnd) return;
    const close = text.indexOf('"""', t.startOffset + 3);
    if (close === -1 || close >= firstEnd) return;
    const rest = text.slice(close + 3, firstEnd).replace(/[ \t"]/g, "");
    if (!rest) return;
    const endLine = this.map.loc(t.startOffset + t.image.length).line;
    this.report("warning", close, close + 3, `the value continues past this closing """ up to line ${endLine}`,
      `text follows the """ on this line, so it does not end the value`);
  }

  textCommand(ctx: Children): void {
    const kw = ctx["TextKeyword"]![0] as IToken;
    const v = ctx["AnyValue"]?.[0] as IToken | undefined;
    const kind = kw.image.toLowerCase() as TextCommandKind;
    if (!v) {
      this.reportToken(kw, `missing value for ${kw.image.toUpperCase()}`, `write ${kw.image.toUpperCase()} <value>, or "" for an empty value`);
      return;
    }
    const value = this.value(v);
    if (!value) return;
    if (kind === "requires" && !VERSION.test(value.text)) {
      this.report("error", value.offset, value.offset + value.text.length, `invalid version "${value.text}" for REQUIRES`,
        "expected a version such as 0.14.0");
    }
    this.commands.push({ kind, value: value.text, loc: this.map.loc(kw.startOffset), valueLoc: this.map.loc(value.offset) });
  }

  parameterCommand(ctx: Children): void {
    const kw = ctx["PARAMETER"]![0] as IToken;
    const name = ctx["Name"]?.[0] as IToken | undefined;
    const v = ctx["AnyValue"]?.[0] as IToken | undefined;
    if (!name) return this.reportToken(kw, "PARAMETER needs a name and a value", "write PARAMETER <name> <value>");
    if (!v) return this.reportToken(name, `missing value for parameter ${name.image}`);
    const value = this.value(v);
    if (!value) return;
    this.commands.push({
      kind: "parameter",
      name: name.image.toLowerCase(),
      value: value.text,
      loc: this.map.loc(kw.startOffset),
      nameLoc: this.map.loc(name.startOffset),
      valueLoc: this.map.loc(value.offset),
    });
  }

  messageCommand(ctx: Children): void {
    const kw = ctx["MESSAGE"]![0] as IToken;
    const role = ctx["Name"]?.[0] as IToken | undefined;
    const v = ctx["AnyValue"]?.[0] as IToken | undefined;
    if (!role) return this.reportToken(kw, "MESSAGE needs a role and a text", "write MESSAGE <system|user|assistant> <text>");
    const r = role.image.toLowerCase() as MessageRole;
    const roleOk = ROLES.includes(r);
    if (!roleOk) {
      const near = nearest(role.image, ROLES);
      this.reportToken(role, `invalid message role "${role.image}"`,
        near ? `did you mean ${near}?` : "the role must be system, user or assistant");
    }
    if (!v) return this.reportToken(role, `missing text for MESSAGE ${role.image}`);
    const value = this.value(v);
    if (!value || !roleOk) return;
    this.commands.push({ kind: "message", role: r, content: value.text, loc: this.map.loc(kw.startOffset), valueLoc: this.map.loc(value.offset) });
  }

  unknownCommand(ctx: Children): void {
    const word = ctx["UnknownWord"]![0] as IToken;
    const upper = word.image.toUpperCase();
    const glued = COMMAND_NAMES.find((c) => upper.startsWith(c) && !/^[A-Z_]/.test(upper.slice(c.length)));
    const near = glued ? undefined : nearest(word.image, COMMAND_NAMES);
    if (near === "FROM") this.fromMayBeHidden = true;
    const hint = glued ? `put a space or tab after ${glued}` : near ? `did you mean ${near}?` : undefined;
    this.reportToken(word, `unknown instruction "${word.image}"`, hint);
    const v = ctx["AnyValue"]?.[0] as IToken | undefined;
    // an unterminated quote after an unknown word is still worth its own diagnostic
    if (v && v.tokenType.name === "UnterminatedValue") this.value(v);
  }

}
