/**
 * The lexer: template text → tokens, as Go's text/template/parse scans it. Text between actions becomes
 * `text` tokens, already trimmed by `{{- ` and ` -}}` markers; comments (slash-star … star-slash inside `{{ }}`) disappear.
 * Inside an action, whitespace (space, tab, CR, LF) separates tokens and is recorded as `sp` on the
 * token that follows it, which the parser needs to tell `$x .Y` (two arguments) from `$x.Y` (a field).
 */
import { SourceMap } from "./errors.js";

export type TokType =
  | "text"
  | "left" // {{
  | "right" // }}
  | "ident"
  | "keyword"
  | "field" // .Name
  | "var" // $ or $name
  | "dot"
  | "string"
  | "char"
  | "number"
  | "bool"
  | "nil"
  | "pipe"
  | "lparen"
  | "rparen"
  | "declare"
  | "assign"
  | "comma"
  | "eof";

export interface Token {
  t: TokType;
  /** offset of the token's first character */
  pos: number;
  /** offset just past the token */
  end: number;
  /** text for text tokens, decoded value for strings, spelling otherwise */
  val: string;
  /** whitespace came right before this token (inside an action) */
  sp: boolean;
}

const KEYWORDS = new Set(["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"]);

function isSpace(c: string | undefined): boolean {
  return c === " " || c === "\t" || c === "\r" || c === "\n";
}

const ALNUM = /[\p{L}\p{Nd}_]/u;
function isAlnum(c: string | undefined): boolean {
  return c !== undefined && (c === "_" || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || (c > "\x7f" && ALNUM.test(c)));
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

export function lex(src: string, map: SourceMap): Token[] {
  const toks: Token[] = [];
  const n = src.length;
  let i = 0;
  let trimNext = false;
  const fail = (msg: string, at: number): never => {
    throw map.error("parse", msg, at);
  };

  while (i <= n) {
    const open = src.indexOf("{{", i);
    const stop = open < 0 ? n : open;
    const trimLeft = open >= 0 && src[open + 2] === "-" && isSpace(src[open + 3]);
    let a = i;
    let b = stop;
    if (trimNext) while (a < b && isSpace(src[a])) a++;
    if (trimLeft) while (b > a && isSpace(src[b - 1])) b--;
    trimNext = false;
    if (b > a) toks.push({ t: "text", pos: a, end: b, val: src.slice(a, b), sp: false });
    if (open < 0) break;

    let p = open + 2 + (trimLeft ? 2 : 0);
    // Comment: only right after the delimiter (and its trim marker).
    if (src.startsWith("/*", p)) {
      const close = src.indexOf("*/", p + 2);
      if (close < 0) fail("unclosed comment", open);
      p = close + 2;
      if (src.startsWith("}}", p)) i = p + 2;
      else if (isSpace(src[p]) && src.startsWith("-}}", p + 1)) {
        i = p + 4;
        trimNext = true;
      } else fail("comment ends before closing delimiter", open);
      continue;
    }
    toks.push({ t: "left", pos: open, end: open + 2, val: "{{", sp: false });
    let sp = trimLeft;
    const parens: number[] = [];
    for (;;) {
      if (p >= n) fail("unclosed action", open);
      const c = src[p]!;
      if (c === "}" && src[p + 1] === "}") {
        toks.push({ t: "right", pos: p, end: p + 2, val: "}}", sp });
        i = p + 2;
        break;
      }
      if (isSpace(c)) {
        if (src[p + 1] === "-" && src[p + 2] === "}" && src[p + 3] === "}") {
          toks.push({ t: "right", pos: p + 1, end: p + 4, val: "-}}", sp: true });
          i = p + 4;
          trimNext = true;
          break;
        }
        while (p < n && isSpace(src[p])) p++;
        sp = true;
        continue;
      }
      const start = p;
      const push = (t: TokType, val: string, end: number) => {
        toks.push({ t, pos: start, end, val, sp });
        sp = false;
        p = end;
      };
      const atTerminator = (q: number) => {
        const d = src[q];
        return q >= n || isSpace(d) || d === "." || d === "," || d === "|" || d === ":" || d === ")" || d === "(" || src.startsWith("}}", q);
      };
      if (c === "|") push("pipe", c, p + 1);
      else if (c === "(") {
        parens.push(p);
        push("lparen", c, p + 1);
      } else if (c === ")") {
        if (parens.pop() === undefined) fail("unexpected right paren", p);
        push("rparen", c, p + 1);
      } else if (c === ",") push("comma", c, p + 1);
      else if (c === "=") push("assign", c, p + 1);
      else if (c === ":") {
        if (src[p + 1] !== "=") fail("expected :=", p);
        push("declare", ":=", p + 2);
      } else if (c === '"') {
        const [val, end] = lexQuoted(src, p, fail);
        push("string", val, end);
      } else if (c === "`") {
        const close = src.indexOf("`", p + 1);
        if (close < 0) fail("unterminated raw quoted string", p);
        push("string", src.slice(p + 1, close).replace(/\r/g, ""), close + 1);
      } else if (c === "'") {
        const [val, end] = lexChar(src, p, fail);
        push("char", val, end);
      } else if (c === "$" || (c === "." && !isDigit(src[p + 1]))) {
        let q = p + 1;
        while (isAlnum(src[q])) q++;
        if (!atTerminator(q)) fail(`bad character ${describe(src, q)}`, q);
        if (c === "$") push("var", src.slice(p, q), q);
        else push(q === p + 1 ? "dot" : "field", src.slice(p, q), q);
      } else if (isDigit(c) || c === "." || ((c === "+" || c === "-") && (isDigit(src[p + 1]) || src[p + 1] === "."))) {
        const end = scanNumber(src, p);
        if (isAlnum(src[end])) fail(`bad number syntax: "${src.slice(p, end + 1)}"`, p);
        push("number", src.slice(p, end), end);
      } else if (isAlnum(c)) {
        let q = p;
        while (isAlnum(src[q])) q++;
        if (!atTerminator(q)) fail(`bad character ${describe(src, q)}`, q);
        const word = src.slice(p, q);
        if (KEYWORDS.has(word)) push("keyword", word, q);
        else if (word === "true" || word === "false") push("bool", word, q);
        else if (word === "nil") push("nil", word, q);
        else push("ident", word, q);
      } else fail(`unrecognized character in action: ${describe(src, p)}`, p);
    }
    if (parens.length > 0) fail("unclosed left paren", parens[parens.length - 1]!);
  }
  toks.push({ t: "eof", pos: n, end: n, val: "", sp: false });
  return toks;
}

function describe(src: string, at: number): string {
  const ch = String.fromCodePoint(src.codePointAt(at) ?? 0xfffd);
  const cp = ch.codePointAt(0)!;
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} '${ch}'`;
}

/** Go number syntax: returns the end offset (digits, fraction, exponent, base prefixes, `_`). */
function scanNumber(src: string, p: number): number {
  let q = p;
  if (src[q] === "+" || src[q] === "-") q++;
  let digits = /[0-9_]/;
  let decimal = true;
  if (src[q] === "0" && /[xXoObB]/.test(src[q + 1] ?? "")) {
    const b = src[q + 1]!.toLowerCase();
    digits = b === "x" ? /[0-9a-fA-F_]/ : b === "o" ? /[0-7_]/ : /[01_]/;
    decimal = false;
    q += 2;
  }
  while (q < src.length && digits.test(src[q]!)) q++;
  if (src[q] === ".") {
    q++;
    while (q < src.length && digits.test(src[q]!)) q++;
  }
  if (decimal && (src[q] === "e" || src[q] === "E")) {
    q++;
    if (src[q] === "+" || src[q] === "-") q++;
    while (q < src.length && /[0-9_]/.test(src[q]!)) q++;
  }
  if (src[q] === "i") q++;
  return q;
}

const SIMPLE_ESC: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\" };

/** Decodes one Go escape at src[p] === "\\"; returns [text, next offset]. */
function escape(src: string, p: number, quote: string, fail: (m: string, at: number) => never): [string, number] {
  const e = src[p + 1];
  if (e === undefined) fail("unterminated quoted string", p);
  if (e! in SIMPLE_ESC) return [SIMPLE_ESC[e!]!, p + 2];
  if (e === quote) return [quote, p + 2];
  const hexLen = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
  if (hexLen) {
    const h = src.slice(p + 2, p + 2 + hexLen);
    if (!new RegExp(`^[0-9a-fA-F]{${hexLen}}$`).test(h)) fail("invalid syntax", p);
    const cp = parseInt(h, 16);
    if (e === "x") return [String.fromCharCode(cp), p + 2 + hexLen];
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail("invalid syntax", p);
    return [String.fromCodePoint(cp), p + 2 + hexLen];
  }
  if (e! >= "0" && e! <= "7") {
    const o = src.slice(p + 1, p + 4);
    if (!/^[0-7]{3}$/.test(o) || parseInt(o, 8) > 255) fail("invalid syntax", p);
    return [String.fromCharCode(parseInt(o, 8)), p + 4];
  }
  return fail("invalid syntax", p);
}

function lexQuoted(src: string, p: number, fail: (m: string, at: number) => never): [string, number] {
  let out = "";
  let q = p + 1;
  for (;;) {
    const c = src[q];
    if (c === undefined || c === "\n") fail("unterminated quoted string", p);
    if (c === '"') return [out, q + 1];
    if (c === "\\") {
      const [s, next] = escape(src, q, '"', fail);
      out += s;
      q = next;
    } else {
      out += c;
      q++;
    }
  }
}

function lexChar(src: string, p: number, fail: (m: string, at: number) => never): [string, number] {
  let q = p + 1;
  let val: string;
  const c = src[q];
  if (c === undefined || c === "\n") return fail("unterminated character constant", p);
  if (c === "'") return fail("empty character constant", p);
  if (c === "\\") [val, q] = escape(src, q, "'", fail);
  else {
    val = String.fromCodePoint(src.codePointAt(q)!);
    q += val.length;
  }
  if (src[q] !== "'") fail(src.indexOf("'", q) < 0 || src.slice(q, src.indexOf("'", q)).includes("\n") ? "unterminated character constant" : "invalid syntax", p);
  return [String(val.codePointAt(0)!), q + 1];
}
