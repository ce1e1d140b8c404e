/**
 * JSON Schema `pattern` (an ECMA-262 regular expression) → a GBNF expression over the *JSON text* of
 * a string's content: the characters between the quotes, so `"` and `\` appear escaped and control
 * characters as escapes. Supported: literals and escapes, `.`, classes with ranges and negation, `\d \w
 * \s` and their negations, groups (capturing, `(?:…)`, named), alternation, every quantifier (lazy ones
 * match the same language). A pattern is unanchored, as JSON Schema says: an alternative without `^`
 * may be preceded by any text, one without `$` followed by any. Lookarounds, backreferences and word
 * boundaries cannot be written as a grammar: they throw RegexUnsupported.
 */
import { cls, lit, repeat } from "./gbnf.js";

export class RegexUnsupported extends Error {}
export class RegexInvalid extends Error {}

type Ranges = [number, number][];
type Node =
  | { t: "set"; ranges: Ranges }
  | { t: "seq"; items: Node[] }
  | { t: "alt"; items: Node[] }
  | { t: "rep"; e: Node; min: number; max: number | null };

const MAX_CP = 0x10ffff;
const DIGIT: Ranges = [[48, 57]];
const WORD: Ranges = [[48, 57], [65, 90], [95, 95], [97, 122]];
const SPACE: Ranges = [[9, 13], [32, 32], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff]];
const LINE_TERMINATORS: Ranges = [[10, 10], [13, 13], [0x2028, 0x2029]];

function normalize(r: Ranges): Ranges {
  const s = [...r].sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [a, b] of s) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

function complement(r: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (const [a, b] of normalize(r)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

class RegexParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parse(): Node[] {
    // top-level alternatives are returned separately: anchors belong to each of them
    const alts = [this.sequence(true)];
    while (this.s[this.i] === "|") {
      this.i++;
      alts.push(this.sequence(true));
    }
    if (this.i < this.s.length) throw new RegexInvalid(`unbalanced ")" at ${this.i}`);
    return alts;
  }

  anchoredStart = new Set<number>();
  anchoredEnd = new Set<number>();
  private altIndex = 0;

  private alternatives(): Node {
    const alts = [this.sequence(false)];
    while (this.s[this.i] === "|") {
      this.i++;
      alts.push(this.sequence(false));
    }
    return alts.length === 1 ? alts[0]! : { t: "alt", items: alts };
  }

  private sequence(top: boolean): Node {
    const items: Node[] = [];
    const index = top ? this.altIndex++ : -1;
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "^") {
        if (!top || items.length > 0) throw new RegexUnsupported("^ inside a pattern (only at the start of an alternative)");
        this.anchoredStart.add(index);
        this.i++;
        continue;
      }
      if (c === "$") {
        this.i++;
        const n = this.s[this.i];
        if (!top || (n !== undefined && n !== "|")) throw new RegexUnsupported("$ inside a pattern (only at the end of an alternative)");
        this.anchoredEnd.add(index);
        continue;
      }
      items.push(this.quantified(this.atom()));
    }
    return items.length === 1 ? items[0]! : { t: "seq", items };
  }

  private quantified(e: Node): Node {
    for (;;) {
      const c = this.s[this.i];
      let min: number;
      let max: number | null;
      if (c === "*") [min, max] = [0, null];
      else if (c === "+") [min, max] = [1, null];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
        if (!m) return e; // a literal "{", as ECMA's annex B reads it
        min = Number(m[1]);
        max = m[2] ? (m[3] ? Number(m[3]) : null) : min;
        if (max !== null && max < min) throw new RegexInvalid(`numbers out of order in {${min},${max}}`);
        this.i += m[0].length - 1;
      } else return e;
      this.i++;
      if (this.s[this.i] === "?") this.i++; // lazy: the same language
      e = { t: "rep", e, min, max };
    }
  }

  private atom(): Node {
    const c = this.s[this.i]!;
    if (c === "(") {
      this.i++;
      if (this.s[this.i] === "?") {
        const rest = this.s.slice(this.i, this.i + 3);
        if (rest.startsWith("?:")) this.i += 2;
        else if (/^\?<[A-Za-z_$]/.test(rest)) {
          const end = this.s.indexOf(">", this.i);
          if (end < 0) throw new RegexInvalid("unfinished group name");
          this.i = end + 1;
        } else throw new RegexUnsupported(`lookaround "(${rest}" cannot be written as a grammar`);
      }
      const inner = this.alternatives();
      if (this.s[this.i] !== ")") throw new RegexInvalid("unbalanced (");
      this.i++;
      return inner;
    }
    if (c === "[") return this.charClass();
    if (c === ".") {
      this.i++;
      return { t: "set", ranges: complement(LINE_TERMINATORS) };
    }
    if (c === "\\") {
      this.i++;
      return { t: "set", ranges: this.escape(false) };
    }
    if (c === "*" || c === "+" || c === "?") throw new RegexInvalid(`nothing to repeat before "${c}"`);
    const cp = this.s.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return { t: "set", ranges: [[cp, cp]] };
  }

  /** After a backslash: the set it stands for. */
  private escape(inClass: boolean): Ranges {
    const c = this.s[this.i++];
    const hex = (n: number): number => {
      const h = this.s.slice(this.i, this.i + n);
      if (h.length !== n || !/^[0-9a-fA-F]+$/.test(h)) throw new RegexInvalid(`bad \\${c} escape`);
      this.i += n;
      return parseInt(h, 16);
    };
    const one = (x: number): Ranges => [[x, x]];
    switch (c) {
      case undefined: throw new RegexInvalid("pattern ends with \\");
      case "d": return DIGIT;
      case "D": return complement(DIGIT);
      case "w": return WORD;
      case "W": return complement(WORD);
      case "s": return SPACE;
      case "S": return complement(SPACE);
      case "n": return one(10);
      case "r": return one(13);
      case "t": return one(9);
      case "f": return one(12);
      case "v": return one(11);
      case "0": return one(0);
      case "x": return one(hex(2));
      case "u": {
        if (this.s[this.i] === "{") {
          const end = this.s.indexOf("}", this.i);
          const h = this.s.slice(this.i + 1, end);
          if (end < 0 || !/^[0-9a-fA-F]{1,6}$/.test(h)) throw new RegexInvalid("bad \\u{…} escape");
          this.i = end + 1;
          return one(parseInt(h, 16));
        }
        return one(hex(4));
      }
      case "b":
        if (inClass) return one(8);
        throw new RegexUnsupported("word boundary \\b cannot be written as a grammar");
      case "B": throw new RegexUnsupported("\\B cannot be written as a grammar");
      case "c": {
        const l = this.s[this.i++];
        if (!l || !/[A-Za-z]/.test(l)) throw new RegexInvalid("bad \\c escape");
        return one(l.charCodeAt(0) % 32);
      }
      case "p":
      case "P":
        throw new RegexUnsupported(`unicode property escape \\${c} is not supported`);
      case "k": throw new RegexUnsupported("backreference \\k cannot be written as a grammar");
      default:
        if (/[1-9]/.test(c)) throw new RegexUnsupported(`backreference \\${c} cannot be written as a grammar`);
        return one(c.codePointAt(0)!);
    }
  }

  private charClass(): Node {
    this.i++;
    let neg = false;
    if (this.s[this.i] === "^") {
      neg = true;
      this.i++;
    }
    const ranges: Ranges = [];
    const single = (): Ranges => {
      if (this.s[this.i] === "\\") {
        this.i++;
        return this.escape(true);
      }
      const cp = this.s.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      return [[cp, cp]];
    };
    while (this.s[this.i] !== "]") {
      if (this.i >= this.s.length) throw new RegexInvalid("unfinished [class]");
      const a = single();
      if (this.s[this.i] === "-" && this.s[this.i + 1] !== "]" && this.i + 1 < this.s.length && a.length === 1 && a[0]![0] === a[0]![1]) {
        this.i++;
        const b = single();
        if (b.length !== 1 || b[0]![0] !== b[0]![1]) {
          ranges.push(...a, [45, 45], ...b);
          continue;
        }
        if (b[0]![0] < a[0]![0]) throw new RegexInvalid("range out of order in [class]");
        ranges.push([a[0]![0], b[0]![0]]);
      } else ranges.push(...a);
    }
    this.i++;
    const set = normalize(ranges);
    return { t: "set", ranges: neg ? complement(set) : set };
  }
}

// ---------------------------------------------------------------------------------------------------
// Writing: code points as they appear inside a JSON string

/** Code points that JSON writes raw inside a string (llama.cpp's `char` excludes DEL as well). */
const RAW: Ranges = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x7e], [0x80, 0xd7ff], [0xe000, MAX_CP]];

function intersect(a: Ranges, b: Ranges): Ranges {
  const out: Ranges = [];
  for (const [x, y] of a) for (const [u, v] of b) {
    const lo = Math.max(x, u);
    const hi = Math.min(y, v);
    if (lo <= hi) out.push([lo, hi]);
  }
  return normalize(out);
}

const SHORT_ESCAPES = new Set([8, 9, 10, 12, 13]);

/** The one escape mf writes for a character JSON cannot write raw. */
function jsonEscape(c: number): string {
  const short: Record<number, string> = { 0x22: '\\"', 0x5c: "\\\\", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t" };
  return short[c] ?? "\\u" + c.toString(16).padStart(4, "0");
}

/** A set of code points as GBNF alternatives matching their JSON-string forms. */
export function jsonCharSet(ranges: Ranges): string {
  const set = normalize(ranges);
  const raw = intersect(set, RAW);
  const alts: string[] = [];
  if (raw.length) {
    // a negated class is shorter when the set holds most of the raw characters
    const others = [...complement(raw), [0x110000, 0x3fffff] as [number, number]];
    alts.push(others.length < raw.length ? cls(others, true) : cls(raw));
  }
  // characters JSON escapes: the short forms, then the rest as \u00XX grouped by their high digit
  const inSet = (c: number): boolean => set.some(([a, b]) => c >= a && c <= b);
  const long: number[] = [];
  for (const c of [0x22, 0x5c, 8, 9, 10, 12, 13]) if (inSet(c)) alts.push(lit(jsonEscape(c)));
  for (let c = 0; c < 0x20; c++) if (inSet(c) && !SHORT_ESCAPES.has(c)) long.push(c);
  if (inSet(0x7f)) long.push(0x7f);
  const byHigh = new Map<number, number[]>();
  for (const c of long) byHigh.set(c >> 4, [...(byHigh.get(c >> 4) ?? []), c & 15]);
  const hexDigit = (d: number): number => (d < 10 ? 48 + d : 87 + d);
  const groups = [...byHigh].map(([hi, los]) => `${lit(hi.toString(16))} ${cls(normalize(los.map((d) => [hexDigit(d), hexDigit(d)])))}`);
  if (groups.length) alts.push(`"\\\\u00" ${groups.length === 1 ? groups[0] : `(${groups.join(" | ")})`}`);
  if (!alts.length) throw new RegexUnsupported("a class that matches no character");
  return alts.length === 1 ? alts[0]! : `(${alts.join(" | ")})`;
}

function write(n: Node): string {
  switch (n.t) {
    case "set":
      return jsonCharSet(n.ranges);
    case "seq": {
      // runs of single raw characters read better as one literal
      const parts: string[] = [];
      let run = "";
      for (const item of n.items) {
        if (item.t === "set" && item.ranges.length === 1 && item.ranges[0]![0] === item.ranges[0]![1] && intersect(item.ranges, RAW).length) {
          run += String.fromCodePoint(item.ranges[0]![0]);
          continue;
        }
        if (run) parts.push(lit(run));
        run = "";
        parts.push(write(item));
      }
      if (run) parts.push(lit(run));
      return parts.length === 1 ? parts[0]! : `(${parts.join(" ")})`;
    }
    case "alt":
      return `(${n.items.map(write).join(" | ")})`;
    case "rep": {
      const inner = write(n.e);
      return repeat(/^[("[]|^[A-Za-z]/.test(inner) && isAtom(inner) ? inner : `(${inner})`, n.min, n.max);
    }
  }
}

/** Whether a written expression is one GBNF atom (safe to suffix with a quantifier). */
function isAtom(s: string): boolean {
  if (/^"(?:[^"\\]|\\.)*"$/.test(s)) return true;
  if (/^\[(?:[^\]\\]|\\.)*\]$/.test(s)) return true;
  if (/^[A-Za-z0-9_-]+$/.test(s)) return true;
  if (s.startsWith("(") && s.endsWith(")")) {
    let depth = 0;
    let inStr = false;
    let inCls = false;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c === "\\") { i++; continue; }
      if (inStr) { if (c === '"') inStr = false; continue; }
      if (inCls) { if (c === "]") inCls = false; continue; }
      if (c === '"') inStr = true;
      else if (c === "[") inCls = true;
      else if (c === "(") depth++;
      else if (c === ")" && --depth === 0 && i < s.length - 1) return false;
    }
    return true;
  }
  return false;
}

/**
 * The GBNF expression for the JSON text of strings that `pattern` matches; `anyChar` is the name of a
 * rule matching one JSON string character (used for the unanchored sides).
 */
export function patternToGbnf(pattern: string, anyChar: string): string {
  const p = new RegexParser(pattern);
  const alts = p.parse();
  const written = alts.map((a, k) => {
    const body = a.t === "seq" && a.items.length === 0 ? "" : write(a);
    const parts = [p.anchoredStart.has(k) ? "" : `${anyChar}*`, body, p.anchoredEnd.has(k) ? "" : `${anyChar}*`].filter(Boolean);
    return parts.length ? parts.join(" ") : '""';
  });
  return written.length === 1 ? written[0]! : `(${written.join(" | ")})`;
}
