/**
 * The parser: tokens → tree, with Go's rules (functions and variables checked at parse time,
 * `else if` / `else with` chains, `break`/`continue` only inside `range`, `define` only at top level).
 * Errors are positioned at the offending token, or at the `{{` of the offending action.
 */
import type { Arg, Command, Node, Pipe, Tree } from "./ast.js";
import type { SourceMap, TemplateError } from "./errors.js";
import { lex, type Token, type TokType } from "./lexer.js";
import { GoFloat } from "./values.js";

export function parse(src: string, map: SourceMap, hasFunction: (name: string) => boolean): Tree {
  return new Parser(lex(src, map), map, hasFunction).parseTop();
}

type Stop = { k: "end" | "else"; left: Token; after: Token } | { k: "eof"; left: Token; after: Token };

const TERM_START = new Set<TokType>(["bool", "char", "dot", "field", "ident", "number", "nil", "string", "var", "lparen"]);

class Parser {
  private i = 0;
  private vars: string[] = ["$"];
  private rangeDepth = 0;
  private readonly defs = new Map<string, Node[]>();

  constructor(
    private readonly toks: Token[],
    private readonly map: SourceMap,
    private readonly hasFunction: (name: string) => boolean,
  ) {}

  private err(msg: string, at: number): TemplateError {
    return this.map.error("parse", msg, at);
  }

  private peek(o = 0): Token {
    return this.toks[Math.min(this.i + o, this.toks.length - 1)]!;
  }

  private next(): Token {
    return this.toks[Math.min(this.i++, this.toks.length - 1)]!;
  }

  private describe(t: Token): string {
    switch (t.t) {
      case "eof":
        return "EOF";
      case "right":
        return "right delimiter";
      case "keyword":
        return `<${t.val}>`;
      case "string":
        return JSON.stringify(t.val);
      default:
        return `"${t.val}"`;
    }
  }

  private unexpected(t: Token, context: string): never {
    throw this.err(`unexpected ${this.describe(t)} in ${context}`, t.pos);
  }

  private expectRight(context: string): Token {
    const t = this.next();
    if (t.t !== "right") this.unexpected(t, context);
    return t;
  }

  parseTop(): Tree {
    const root: Node[] = [];
    for (;;) {
      const t = this.peek();
      if (t.t === "eof") break;
      if (t.t === "left" && this.peek(1).t === "keyword" && this.peek(1).val === "define") {
        this.i += 2;
        this.parseDefine(t);
        continue;
      }
      const n = this.textOrAction();
      if ("stop" in n) {
        throw this.err(`unexpected {{${n.stop.k}}}`, n.stop.left.pos);
      }
      root.push(n);
    }
    return { root, defs: this.defs };
  }

  private addDef(name: string, list: Node[], at: number): void {
    const old = this.defs.get(name);
    const empty = (l: Node[]) => l.every((n) => n.k === "text" && n.text.trim() === "");
    if (old && !empty(old) && !empty(list)) throw this.err(`template: multiple definition of template "${name}"`, at);
    if (!old || empty(old)) this.defs.set(name, list);
  }

  /** A body with fresh variables, as Go parses `define` and `block` bodies. */
  private body(context: string, left: Token): Node[] {
    const saved = [this.vars, this.rangeDepth] as const;
    this.vars = ["$"];
    this.rangeDepth = 0;
    const { nodes, stop } = this.itemList(left, context);
    if (stop.k !== "end") throw this.err(`unexpected {{${stop.k}}} in ${context}`, stop.left.pos);
    [this.vars, this.rangeDepth] = saved;
    return nodes;
  }

  private parseDefine(left: Token): void {
    const nameTok = this.next();
    if (nameTok.t !== "string") this.unexpected(nameTok, "define clause");
    this.expectRight("define clause");
    this.addDef(nameTok.val, this.body("define clause", left), left.pos);
  }

  private itemList(open: Token, context: string): { nodes: Node[]; stop: Stop } {
    const nodes: Node[] = [];
    for (;;) {
      if (this.peek().t === "eof") throw this.err(`unexpected EOF: {{${context}}} has no {{end}}`, open.pos);
      const n = this.textOrAction();
      if ("stop" in n) return { nodes, stop: n.stop };
      nodes.push(n);
    }
  }

  private textOrAction(): Node | { stop: Stop } {
    const t = this.next();
    if (t.t === "text") return { k: "text", pos: t.pos, text: t.val };
    if (t.t !== "left") this.unexpected(t, "input");
    return this.action(t);
  }

  private action(left: Token): Node | { stop: Stop } {
    const t = this.peek();
    if (t.t === "keyword") {
      this.i++;
      switch (t.val) {
        case "if":
        case "with":
        case "range":
          return this.control(t.val, left);
        case "else":
          return { stop: { k: "else", left, after: this.peek() } };
        case "end":
          this.expectRight("end");
          return { stop: { k: "end", left, after: t } };
        case "template":
          return this.templateControl(left);
        case "block":
          return this.blockControl(left);
        case "break":
        case "continue": {
          this.expectRight(`{{${t.val}}}`);
          if (this.rangeDepth === 0) throw this.err(`{{${t.val}}} outside {{range}}`, left.pos);
          return { k: t.val, pos: left.pos };
        }
        default:
          this.unexpected(t, "command");
      }
    }
    if (t.t === "right") throw this.err("missing value for command", left.pos);
    const pipe = this.pipeline("command", "right", left);
    return { k: "action", pos: left.pos, pipe };
  }

  private control(kind: "if" | "with" | "range", left: Token): Node {
    const mark = this.vars.length;
    const pipe = this.pipeline(kind, "right", left);
    if (kind === "range") this.rangeDepth++;
    const first = this.itemList(left, kind);
    if (kind === "range") this.rangeDepth--;
    let elseList: Node[] | null = null;
    if (first.stop.k === "else") {
      const after = this.peek();
      if (after.t === "keyword" && (after.val === "if" || after.val === "with")) {
        if (after.val !== kind) this.unexpected(after, "else");
        this.i++;
        elseList = [this.control(kind, first.stop.left)];
      } else {
        this.expectRight("else");
        const second = this.itemList(left, kind);
        if (second.stop.k !== "end") throw this.err(`expected end; found {{else}}`, second.stop.left.pos);
        elseList = second.nodes;
      }
    }
    this.vars.length = mark;
    return { k: kind, pos: left.pos, pipe, list: first.nodes, elseList };
  }

  private templateName(context: string): string {
    const t = this.next();
    if (t.t !== "string") this.unexpected(t, context);
    return t.val;
  }

  private templateControl(left: Token): Node {
    const name = this.templateName("template clause");
    let pipe: Pipe | null = null;
    if (this.peek().t === "right") this.i++;
    else pipe = this.pipeline("template clause", "right", left);
    return { k: "template", pos: left.pos, name, pipe };
  }

  private blockControl(left: Token): Node {
    const name = this.templateName("block clause");
    const pipe = this.pipeline("block clause", "right", left);
    this.addDef(name, this.body("block clause", left), left.pos);
    return { k: "template", pos: left.pos, name, pipe };
  }

  /** A pipeline up to and including its closing `}}` or `)`. */
  private pipeline(context: string, end: "right" | "rparen", open: Token): Pipe {
    const pipe: Pipe = { pos: this.peek().pos, decl: [], isAssign: false, cmds: [] };
    // Declarations: `$x :=`, `$x =`, and in range `$i, $e :=`.
    if (this.peek().t === "var") {
      const v = this.peek();
      const after = this.peek(1);
      if (after.t === "declare" || after.t === "assign") {
        this.i += 2;
        this.declare(pipe, v, after.t === "assign");
      } else if (after.t === "comma") {
        if (context !== "range") throw this.err(`too many declarations in ${context}`, after.pos);
        const v2 = this.peek(2);
        const op = this.peek(3);
        if (v2.t !== "var" || (op.t !== "declare" && op.t !== "assign")) throw this.err("range can only initialize variables", v2.pos);
        this.i += 4;
        this.declare(pipe, v, op.t === "assign");
        this.declare(pipe, v2, op.t === "assign");
      }
    }
    for (;;) {
      const t = this.peek();
      if (t.t === end) {
        this.i++;
        break;
      }
      if (!TERM_START.has(t.t)) this.unexpected(t, context);
      pipe.cmds.push(this.command(end, context));
    }
    if (pipe.cmds.length === 0) throw this.err(`missing value for ${context}`, open.pos);
    for (let s = 1; s < pipe.cmds.length; s++) {
      const a = pipe.cmds[s]!.args[0]!;
      if (a.k === "bool" || a.k === "dot" || a.k === "nil" || a.k === "number" || a.k === "string") {
        throw this.err(`non executable command in pipeline stage ${s + 1}`, a.pos);
      }
    }
    return pipe;
  }

  private declare(pipe: Pipe, v: Token, assign: boolean): void {
    if (assign && !this.vars.includes(v.val)) throw this.err(`undefined variable "${v.val}"`, v.pos);
    pipe.isAssign = assign;
    pipe.decl.push(v.val);
    if (!assign) this.vars.push(v.val);
  }

  private command(end: "right" | "rparen", context: string): Command {
    const cmd: Command = { pos: this.peek().pos, args: [] };
    for (;;) {
      const op = this.operand();
      if (op) cmd.args.push(op);
      const t = this.peek();
      if (t.t === "pipe") {
        this.i++;
        break;
      }
      if (t.t === end) break;
      if (op && t.sp) continue;
      this.unexpected(t, op ? "operand" : context);
    }
    if (cmd.args.length === 0) throw this.err("empty command", cmd.pos);
    return cmd;
  }

  private operand(): Arg | null {
    const node = this.term();
    if (!node) return null;
    if (this.peek().t !== "field" || this.peek().sp) return node;
    const idents: string[] = [];
    let end = node.end;
    while (this.peek().t === "field" && !this.peek().sp) {
      const f = this.next();
      idents.push(f.val.slice(1));
      end = f.end;
    }
    switch (node.k) {
      case "field":
        return { ...node, idents: [...node.idents, ...idents], end };
      case "var":
        return { ...node, idents: [...node.idents, ...idents], end };
      case "bool":
      case "string":
      case "number":
      case "nil":
      case "dot":
        throw this.err(`unexpected . after term "${this.map.text.slice(node.pos, node.end)}"`, node.end);
      default:
        return { k: "chain", pos: node.pos, end, node, idents };
    }
  }

  private term(): Arg | null {
    const t = this.peek();
    switch (t.t) {
      case "ident":
        this.i++;
        if (!this.hasFunction(t.val)) throw this.err(`function "${t.val}" not defined`, t.pos);
        return { k: "ident", pos: t.pos, end: t.end, name: t.val };
      case "dot":
        this.i++;
        return { k: "dot", pos: t.pos, end: t.end };
      case "nil":
        this.i++;
        return { k: "nil", pos: t.pos, end: t.end };
      case "var":
        this.i++;
        if (!this.vars.includes(t.val)) throw this.err(`undefined variable "${t.val}"`, t.pos);
        return { k: "var", pos: t.pos, end: t.end, name: t.val, idents: [] };
      case "field":
        this.i++;
        return { k: "field", pos: t.pos, end: t.end, idents: [t.val.slice(1)] };
      case "bool":
        this.i++;
        return { k: "bool", pos: t.pos, end: t.end, value: t.val === "true" };
      case "char":
        this.i++;
        return { k: "number", pos: t.pos, end: t.end, value: Number(t.val) };
      case "number":
        this.i++;
        return { k: "number", pos: t.pos, end: t.end, value: this.number(t) };
      case "string":
        this.i++;
        return { k: "string", pos: t.pos, end: t.end, value: t.val };
      case "lparen": {
        this.i++;
        const pipe = this.pipeline("parenthesized pipeline", "rparen", t);
        return { k: "pipe", pos: t.pos, end: this.toks[this.i - 1]!.end, pipe };
      }
      default:
        return null;
    }
  }

  private number(t: Token): number | GoFloat {
    const text = t.val.replace(/_/g, "");
    const bad = (): never => {
      throw this.err(`bad number syntax: "${t.val}"`, t.pos);
    };
    if (text.endsWith("i")) throw this.err(`complex constants are not supported: "${t.val}"`, t.pos);
    if (t.val.startsWith("_") || t.val.endsWith("_") || t.val.includes("__")) bad();
    const neg = text.startsWith("-");
    const body = text.replace(/^[+-]/, "");
    let value: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(body)) value = parseInt(body.slice(2), 16);
    else if (/^0[oO][0-7]+$/.test(body)) value = parseInt(body.slice(2), 8);
    else if (/^0[bB][01]+$/.test(body)) value = parseInt(body.slice(2), 2);
    else if (/^0[0-7]+$/.test(body)) value = parseInt(body, 8);
    else if (/^[0-9]+$/.test(body)) value = Number(body);
    else if (/^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(body)) {
      const f = Number(body);
      return new GoFloat(neg ? -f : f);
    } else return bad();
    if (value > 2 ** 63 - (neg ? 0 : 1)) throw this.err(`integer overflow: "${t.val}"`, t.pos);
    return neg ? -value : value;
  }
}
