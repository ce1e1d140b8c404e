/**
 * GBNF, llama.cpp's grammar format: the text helpers the JSON Schema converter writes with, and a
 * parser plus a recognizer that decide whether a text is in a grammar's language without a model.
 * The recognizer is what proves, in tests and in `mf`'s own checks, that a converted grammar rejects
 * what the schema rejects.
 *
 * Grammar text: `name ::= alternatives`, one rule per line (a rule continues over newlines inside
 * parentheses or after `|`); sequences of `"literal"`, `[class]` / `[^class]`, `.`, rule names and
 * `( … )` groups, each optionally followed by `*`, `+`, `?` or `{m}`, `{m,}`, `{m,n}`. The start rule is
 * `root`. Characters are Unicode code points, as llama.cpp's grammar sampler reads the decoded text.
 */

/** A literal, quoted and escaped for GBNF. */
export function lit(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (invisible(c)) out += c > 0xffff ? "\\U" + c.toString(16).padStart(8, "0") : "\\u" + c.toString(16).padStart(4, "0");
    else out += ch;
  }
  return out + '"';
}

/** One code point written for use inside a `[ … ]` class. */
export function classChar(c: number): string {
  if (c > 0x10ffff) return "\\U" + c.toString(16).padStart(8, "0");
  const ch = String.fromCodePoint(c);
  if (ch === "]" || ch === "[" || ch === "\\" || ch === "^" || ch === "-" || ch === '"') return "\\" + ch;
  if (ch === "\n") return "\\n";
  if (ch === "\r") return "\\r";
  if (ch === "\t") return "\\t";
  if (c < 0x20 || c === 0x7f) return "\\x" + c.toString(16).padStart(2, "0");
  if (invisible(c)) return c > 0xffff ? "\\U" + c.toString(16).padStart(8, "0") : "\\u" + c.toString(16).padStart(4, "0");
  return ch;
}

/** Code points written as escapes so that a grammar's text stays printable on one line. */
function invisible(c: number): boolean {
  return (c >= 0x7f && c <= 0xa0) || c === 0x2028 || c === 0x2029 || (c >= 0xd800 && c <= 0xdfff) || (c >= 0xe000 && c <= 0xf8ff) || c === 0xfeff || c >= 0xfff0;
}

/** A class from inclusive code-point ranges; `negated` gives `[^ … ]`. */
export function cls(ranges: readonly (readonly [number, number])[], negated = false): string {
  let body = "";
  for (const [a, b] of ranges) body += a === b ? classChar(a) : `${classChar(a)}-${classChar(b)}`;
  return `[${negated ? "^" : ""}${body}]`;
}

/** `e{min,max}` in the shortest form llama.cpp reads (max null = unbounded). */
export function repeat(e: string, min: number, max: number | null): string {
  if (max === 0) return '""';
  if (min === 0 && max === null) return `${e}*`;
  if (min === 1 && max === null) return `${e}+`;
  if (min === 0 && max === 1) return `${e}?`;
  if (min === 1 && max === 1) return e;
  if (max === null) return `${e}{${min},}`;
  if (min === max) return `${e}{${min}}`;
  return `${e}{${min},${max}}`;
}

// ---------------------------------------------------------------------------------------------------
// Parser

export type Expr =
  | { t: "lit"; cps: number[] }
  | { t: "cls"; neg: boolean; ranges: [number, number][] }
  | { t: "any" }
  | { t: "ref"; name: string }
  | { t: "seq"; items: Expr[] }
  | { t: "alt"; items: Expr[] }
  | { t: "rep"; e: Expr; min: number; max: number | null };

export type Rules = Map<string, Expr>;

export class GbnfError extends Error {}

/** Parses GBNF text into rules; throws GbnfError naming the line on any syntax error or undefined rule. */
export function parseGbnf(text: string): Rules {
  const p = new Parser(text);
  const rules = p.grammar();
  const check = (e: Expr): void => {
    if (e.t === "ref" && !rules.has(e.name)) throw new GbnfError(`undefined rule "${e.name}"`);
    if (e.t === "seq" || e.t === "alt") e.items.forEach(check);
    if (e.t === "rep") check(e.e);
  };
  for (const e of rules.values()) check(e);
  if (!rules.has("root")) throw new GbnfError('no "root" rule');
  return rules;
}

class Parser {
  private i = 0;
  constructor(private readonly s: string) {}

  private fail(msg: string): never {
    const line = this.s.slice(0, this.i).split("\n").length;
    throw new GbnfError(`line ${line}: ${msg}`);
  }

  private ws(newlines: boolean): void {
    for (;;) {
      const c = this.s[this.i];
      if (c === " " || c === "\t" || (newlines && (c === "\n" || c === "\r"))) this.i++;
      else if (c === "#") while (this.i < this.s.length && this.s[this.i] !== "\n") this.i++;
      else return;
    }
  }

  private name(): string {
    const m = /^[A-Za-z0-9_-]+/.exec(this.s.slice(this.i));
    if (!m) this.fail("expected a rule name");
    this.i += m[0].length;
    return m[0];
  }

  grammar(): Rules {
    const rules: Rules = new Map();
    for (;;) {
      this.ws(true);
      if (this.i >= this.s.length) return rules;
      const name = this.name();
      this.ws(false);
      if (!this.s.startsWith("::=", this.i)) this.fail(`expected ::= after ${name}`);
      this.i += 3;
      this.ws(true);
      if (rules.has(name)) this.fail(`rule "${name}" defined twice`);
      rules.set(name, this.alternatives(0));
    }
  }

  private alternatives(depth: number): Expr {
    const alts = [this.sequence(depth)];
    for (;;) {
      this.ws(depth > 0);
      if (this.s[this.i] !== "|") break;
      this.i++;
      this.ws(true);
      alts.push(this.sequence(depth));
    }
    return alts.length === 1 ? alts[0]! : { t: "alt", items: alts };
  }

  private sequence(depth: number): Expr {
    const items: Expr[] = [];
    for (;;) {
      this.ws(depth > 0);
      const c = this.s[this.i];
      if (c === undefined || c === "|" || c === ")" || c === "\n" || c === "\r") break;
      // the next rule's head ends this one (only possible at depth 0, after a newline)
      let atom: Expr;
      if (c === '"') atom = this.literal();
      else if (c === "[") atom = this.charClass();
      else if (c === ".") {
        this.i++;
        atom = { t: "any" };
      } else if (c === "(") {
        this.i++;
        this.ws(true);
        atom = this.alternatives(depth + 1);
        this.ws(true);
        if (this.s[this.i] !== ")") this.fail("expected )");
        this.i++;
      } else atom = { t: "ref", name: this.name() };
      items.push(this.suffix(atom));
    }
    return items.length === 1 ? items[0]! : { t: "seq", items };
  }

  private suffix(e: Expr): Expr {
    for (;;) {
      const c = this.s[this.i];
      if (c === "*") e = { t: "rep", e, min: 0, max: null };
      else if (c === "+") e = { t: "rep", e, min: 1, max: null };
      else if (c === "?") e = { t: "rep", e, min: 0, max: 1 };
      else if (c === "{") {
        const m = /^\{\s*(\d+)\s*(?:(,)\s*(\d*)\s*)?\}/.exec(this.s.slice(this.i));
        if (!m) this.fail("bad repetition");
        const min = Number(m[1]);
        const max = m[2] ? (m[3] ? Number(m[3]) : null) : min;
        if (max !== null && max < min) this.fail("repetition max below min");
        this.i += m[0].length - 1;
        e = { t: "rep", e, min, max };
      } else return e;
      this.i++;
    }
  }

  private escape(): number {
    const c = this.s[this.i++];
    const hex = (n: number): number => {
      const h = this.s.slice(this.i, this.i + n);
      if (!/^[0-9a-fA-F]+$/.test(h) || h.length !== n) this.fail("bad escape");
      this.i += n;
      return parseInt(h, 16);
    };
    switch (c) {
      case "n": return 10;
      case "r": return 13;
      case "t": return 9;
      case "x": return hex(2);
      case "u": return hex(4);
      case "U": return hex(8);
      case undefined: return this.fail("unfinished escape");
      default: return c.codePointAt(0)!;
    }
  }

  private char(): number {
    const c = this.s.codePointAt(this.i);
    if (c === undefined) this.fail("unfinished literal");
    if (c === 0x5c) {
      this.i++;
      return this.escape();
    }
    this.i += c > 0xffff ? 2 : 1;
    return c;
  }

  private literal(): Expr {
    this.i++;
    const cps: number[] = [];
    while (this.s[this.i] !== '"') {
      if (this.i >= this.s.length || this.s[this.i] === "\n") this.fail("unfinished literal");
      cps.push(this.char());
    }
    this.i++;
    return { t: "lit", cps };
  }

  private charClass(): Expr {
    this.i++;
    let neg = false;
    if (this.s[this.i] === "^") {
      neg = true;
      this.i++;
    }
    const ranges: [number, number][] = [];
    while (this.s[this.i] !== "]") {
      if (this.i >= this.s.length || this.s[this.i] === "\n") this.fail("unfinished class");
      const a = this.char();
      if (this.s[this.i] === "-" && this.s[this.i + 1] !== "]") {
        this.i++;
        const b = this.char();
        if (b < a) this.fail("reversed class range");
        ranges.push([a, b]);
      } else ranges.push([a, a]);
    }
    this.i++;
    return { t: "cls", neg, ranges };
  }
}

// ---------------------------------------------------------------------------------------------------
// Recognizer

/** Whether `text` is in the language of the grammar's `root` rule (the whole text, nothing left). */
export function matches(rules: Rules, text: string): boolean {
  const cps = Array.from(text, (ch) => ch.codePointAt(0)!);
  return new Recognizer(rules, cps).ends({ t: "ref", name: "root" }, 0).has(cps.length);
}

class Recognizer {
  private readonly memo = new Map<string, Set<number>>();
  constructor(private readonly rules: Rules, private readonly cps: number[]) {}

  /** Every position where a match of `e` starting at `i` can end. */
  ends(e: Expr, i: number): Set<number> {
    const cps = this.cps;
    switch (e.t) {
      case "lit": {
        for (let k = 0; k < e.cps.length; k++) if (cps[i + k] !== e.cps[k]) return new Set();
        return new Set([i + e.cps.length]);
      }
      case "any":
        return i < cps.length ? new Set([i + 1]) : new Set();
      case "cls": {
        const c = cps[i];
        if (c === undefined) return new Set();
        const inside = e.ranges.some(([a, b]) => c >= a && c <= b);
        return inside !== e.neg ? new Set([i + 1]) : new Set();
      }
      case "ref": {
        const key = `${e.name}@${i}`;
        const seen = this.memo.get(key);
        if (seen) return seen;
        this.memo.set(key, new Set()); // left recursion matches nothing
        const r = this.ends(this.rules.get(e.name)!, i);
        this.memo.set(key, r);
        return r;
      }
      case "alt": {
        const out = new Set<number>();
        for (const a of e.items) for (const p of this.ends(a, i)) out.add(p);
        return out;
      }
      case "seq": {
        let cur = new Set([i]);
        for (const item of e.items) {
          const next = new Set<number>();
          for (const p of cur) for (const q of this.ends(item, p)) next.add(q);
          if (next.size === 0) return next;
          cur = next;
        }
        return cur;
      }
      case "rep": {
        const out = new Set<number>();
        const expanded = new Set<number>();
        let frontier = new Set([i]);
        for (let k = 0; ; k++) {
          if (k >= e.min) for (const p of frontier) out.add(p);
          if (e.max !== null && k >= e.max) break;
          const next = new Set<number>();
          for (const p of frontier) {
            if (k >= e.min) {
              if (expanded.has(p)) continue;
              expanded.add(p);
            }
            for (const q of this.ends(e.e, p)) next.add(q);
          }
          if (next.size === 0) break;
          frontier = next;
        }
        return out;
      }
    }
  }
}
