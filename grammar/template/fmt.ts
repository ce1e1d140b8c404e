/**
 * Go's fmt, as far as templates reach it: the `%v` printing of every value (what `{{ . }}` writes),
 * `Sprint`, `Sprintln` and `Sprintf` with the flags `+ - # 0 space`, width, precision and the verbs
 * `v s q d t f F e E g G x X o O b c U T`. Unsupported: argument indexes `%[n]d` and `*` widths
 * (printed as `%!(BADINDEX)` / `%!(BADWIDTH)`), `%#v` Go-syntax output (printed as `%v`).
 */
import { kindOf, mapKeys, num, stringerOf, structType, typeName } from "./values.js";

interface Spec {
  plus: boolean;
  /** `%+v`: struct field names (the plus flag itself is then off, as in Go) */
  plusV?: boolean;
  minus: boolean;
  sharp: boolean;
  zero: boolean;
  space: boolean;
  width: number;
  prec: number;
  verb: string;
}

const PLAIN: Spec = { plus: false, minus: false, sharp: false, zero: false, space: false, width: -1, prec: -1, verb: "v" };

/** The text `{{ . }}` and `%v` give for a value (an invalid value is `<no value>` only at the top). */
export function formatValue(v: unknown): string {
  return fmtArg(v, PLAIN, 0);
}

/** fmt.Sprint: operands separated by a space when neither side is a string. */
export function sprint(args: readonly unknown[]): string {
  let out = "";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (i > 0 && typeof a !== "string" && typeof args[i - 1] !== "string") out += " ";
    out += fmtArg(a, PLAIN, 0);
  }
  return out;
}

/** fmt.Sprintln: operands always separated by spaces, then a newline. */
export function sprintln(args: readonly unknown[]): string {
  return args.map((a) => fmtArg(a, PLAIN, 0)).join(" ") + "\n";
}

/** Shortest float64 in `%v` form (Go's `%g` with the shortest precision: `%e` when exp < -4 or >= 6). */
export function formatFloatShortest(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const [mant, e] = x.toExponential().split("e") as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= 6) return mant + goExp(exp);
  return String(x);
}

function goExp(exp: number): string {
  const a = Math.abs(exp);
  return "e" + (exp < 0 ? "-" : "+") + (a < 10 ? "0" : "") + a;
}

function fixExp(s: string): string {
  const i = s.indexOf("e");
  if (i < 0) return s;
  return s.slice(0, i) + goExp(Number(s.slice(i + 1)));
}

function pad(s: string, spec: Spec, numeric: boolean): string {
  if (spec.width < 0) return s;
  const len = [...s].length;
  if (len >= spec.width) return s;
  const n = spec.width - len;
  if (spec.minus) return s + " ".repeat(n);
  if (spec.zero) {
    if (numeric && (s[0] === "-" || s[0] === "+" || s[0] === " ")) return s[0] + "0".repeat(n) + s.slice(1);
    return "0".repeat(n) + s;
  }
  return " ".repeat(n) + s;
}

function sign(neg: boolean, spec: Spec): string {
  return neg ? "-" : spec.plus ? "+" : spec.space ? " " : "";
}

function badVerb(v: unknown, spec: Spec): string {
  const k = kindOf(v);
  if (k === "invalid" || k === "nil") return `%!${spec.verb}(<nil>)`;
  return `%!${spec.verb}(${typeName(v)}=${fmtArg(v, PLAIN, 0)})`;
}

function fmtArg(v: unknown, spec: Spec, depth: number): string {
  const verb = spec.verb;
  if (verb === "T") return pad(typeName(v), spec, false);
  const k = kindOf(v);
  if (k === "invalid" && depth === 0 && spec === PLAIN) return "<no value>";
  if (k === "invalid" || k === "nil") return verb === "v" ? pad("<nil>", spec, false) : badVerb(v, spec);
  const str = stringerOf(v);
  if (str && "vsxXq".includes(verb)) return fmtString(str(), spec);
  switch (k) {
    case "bool":
      return verb === "t" || verb === "v" ? pad(String(v), spec, false) : badVerb(v, spec);
    case "int":
      return fmtInt(num(v), spec) ?? badVerb(v, spec);
    case "float":
      return fmtFloat(num(v), spec) ?? badVerb(v, spec);
    case "string":
      return "vsqxX".includes(verb) ? fmtString(v as string, spec) : badVerb(v, spec);
    case "slice":
      return "[" + (v as unknown[]).map((e) => fmtArg(e, spec, depth + 1)).join(" ") + "]";
    case "map": {
      const m = v as Record<string, unknown>;
      return "map[" + mapKeys(m).map((key) => fmtArg(key, spec, depth + 1) + ":" + fmtArg(m[key], spec, depth + 1)).join(" ") + "]";
    }
    case "struct": {
      const o = v as Record<string, unknown>;
      const parts = structType(v)!.fields.map((f) => (spec.plusV ? f.name + ":" : "") + fmtArg(o[f.name], spec, depth + 1));
      return "{" + parts.join(" ") + "}";
    }
    case "func":
      return pad("0x0", spec, false);
  }
}

function fmtInt(n: number, spec: Spec): string | undefined {
  const neg = n < 0;
  const a = Math.abs(n);
  let digits: string;
  let prefix = "";
  switch (spec.verb) {
    case "v":
    case "d":
      digits = a.toString(10);
      break;
    case "b":
      digits = a.toString(2);
      break;
    case "o":
      digits = a.toString(8);
      if (spec.sharp) prefix = "0";
      break;
    case "O":
      digits = a.toString(8);
      prefix = "0o";
      break;
    case "x":
      digits = a.toString(16);
      if (spec.sharp) prefix = "0x";
      break;
    case "X":
      digits = a.toString(16).toUpperCase();
      if (spec.sharp) prefix = "0X";
      break;
    case "c":
      return pad(validRune(n), spec, false);
    case "q":
      return pad("'" + quoteChars(validRune(n), "'", spec.plus) + "'", spec, false);
    case "U": {
      const h = a.toString(16).toUpperCase().padStart(4, "0");
      return pad("U+" + h + (spec.sharp ? " '" + validRune(n) + "'" : ""), spec, false);
    }
    default:
      return undefined;
  }
  if (spec.prec >= 0) digits = digits.padStart(spec.prec, "0");
  if (spec.prec === 0 && n === 0) digits = "";
  return pad(sign(neg, spec) + prefix + digits, { ...spec, zero: spec.zero && spec.prec < 0 }, true);
}

function validRune(n: number): string {
  return n >= 0 && n <= 0x10ffff && !(n >= 0xd800 && n <= 0xdfff) ? String.fromCodePoint(n) : "\ufffd";
}

function fmtFloat(x: number, spec: Spec): string | undefined {
  let body: string;
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  if (!Number.isFinite(x)) {
    if (!"vgGeEfF".includes(spec.verb)) return undefined;
    const s = Number.isNaN(x)
      ? (spec.plus ? "+NaN" : spec.space ? " NaN" : "NaN")
      : (x < 0 ? "-" : spec.space && !spec.plus ? " " : "+") + "Inf";
    return pad(s, { ...spec, zero: false }, false);
  }
  switch (spec.verb) {
    case "v":
    case "g":
    case "G":
      body = spec.prec < 0 ? formatFloatShortest(a) : formatG(a, spec.prec === 0 ? 1 : spec.prec);
      if (spec.verb === "G") body = body.toUpperCase();
      break;
    case "e":
    case "E":
      body = fixExp(a.toExponential(spec.prec < 0 ? 6 : Math.min(spec.prec, 100)));
      if (spec.verb === "E") body = body.toUpperCase();
      break;
    case "f":
    case "F":
      body = toFixed(a, spec.prec < 0 ? 6 : Math.min(spec.prec, 100));
      break;
    default:
      return undefined;
  }
  return pad(sign(neg, spec) + body, spec, true);
}

function toFixed(a: number, prec: number): string {
  if (a < 1e21) return a.toFixed(prec);
  const int = BigInt(a).toString();
  return prec > 0 ? int + "." + "0".repeat(prec) : int;
}

/** %.Ng: N significant digits, trailing zeros removed, %e form when exp < -4 or exp >= N. */
function formatG(a: number, prec: number): string {
  if (a === 0) return "0";
  const [mant, e] = a.toExponential(Math.min(prec, 100) - 1).split("e") as [string, string];
  const exp = Number(e);
  const digits = mant.replace(".", "").replace(/0+$/, "") || "0";
  if (exp < -4 || exp >= prec) return digits[0] + (digits.length > 1 ? "." + digits.slice(1) : "") + goExp(exp);
  if (exp < 0) return "0." + "0".repeat(-exp - 1) + digits;
  if (digits.length <= exp + 1) return digits + "0".repeat(exp + 1 - digits.length);
  return digits.slice(0, exp + 1) + "." + digits.slice(exp + 1);
}

function fmtString(s: string, spec: Spec): string {
  if (spec.prec >= 0) s = [...s].slice(0, spec.prec).join("");
  switch (spec.verb) {
    case "q":
      if (spec.sharp && !/[`\x00-\x08\x0a-\x1f\x7f\ufeff]/.test(s)) return pad("`" + s + "`", spec, false);
      return pad(quoteString(s, spec.plus), spec, false);
    case "x":
    case "X": {
      let h = Buffer.from(s, "utf8").toString("hex");
      if (spec.verb === "X") h = h.toUpperCase();
      return pad(h, spec, false);
    }
    default:
      return pad(s, spec, false);
  }
}

/** strconv.Quote (ascii: QuoteToASCII). */
export function quoteString(s: string, ascii = false): string {
  return '"' + quoteChars(s, '"', ascii) + '"';
}

function quoteChars(s: string, q: string, ascii: boolean): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === q || ch === "\\") out += "\\" + ch;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else if (c === 7) out += "\\a";
    else if (c === 8) out += "\\b";
    else if (c === 12) out += "\\f";
    else if (c === 10) out += "\\n";
    else if (c === 13) out += "\\r";
    else if (c === 9) out += "\\t";
    else if (c === 11) out += "\\v";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
    else if (!ascii && isPrint(ch)) out += ch;
    else if (c < 0x10000) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += "\\U" + c.toString(16).padStart(8, "0");
  }
  return out;
}

const NON_PRINT = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|[\p{Zs}]/u;
function isPrint(ch: string): boolean {
  return ch === " " || !NON_PRINT.test(ch);
}

/** fmt.Sprintf; `limit` is called with the length so far after each verb (widths go up to 1e6 each). */
export function sprintf(format: string, args: readonly unknown[], limit?: (length: number) => void): string {
  let out = "";
  let argi = 0;
  const n = format.length;
  let i = 0;
  while (i < n) {
    const pct = format.indexOf("%", i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    const spec: Spec = { plus: false, minus: false, sharp: false, zero: false, space: false, width: -1, prec: -1, verb: "" };
    flags: for (; i < n; i++) {
      switch (format[i]) {
        case "+": spec.plus = true; break;
        case "-": spec.minus = true; break;
        case "#": spec.sharp = true; break;
        case "0": spec.zero = !spec.minus; break;
        case " ": spec.space = true; break;
        default: break flags;
      }
    }
    if (spec.minus) spec.zero = false;
    let bad = "";
    if (format[i] === "[" || format[i] === "*") bad = format[i] === "[" ? "%!(BADINDEX)" : "%!(BADWIDTH)";
    const w = /^\d+/.exec(format.slice(i));
    if (w) {
      spec.width = Math.min(Number(w[0]), 1e6);
      i += w[0].length;
    }
    if (format[i] === ".") {
      i++;
      const p = /^\d+/.exec(format.slice(i));
      spec.prec = p ? Math.min(Number(p[0]), 1e6) : 0;
      if (p) i += p[0].length;
    }
    if (i >= n) {
      out += "%!(NOVERB)";
      break;
    }
    const cp = format.codePointAt(i)!;
    spec.verb = String.fromCodePoint(cp);
    i += spec.verb.length;
    if (bad) {
      out += bad;
      continue;
    }
    if (spec.verb === "v" && spec.plus) {
      spec.plus = false;
      spec.plusV = true;
    }
    if (spec.verb === "%") {
      out += "%";
      continue;
    }
    if (argi >= args.length) {
      out += `%!${spec.verb}(MISSING)`;
      continue;
    }
    const a = args[argi++];
    out += "vsqdtfFeEgGxXoObcUT".includes(spec.verb) ? fmtArg(a === undefined ? null : a, spec, 0) : badVerb(a, spec);
    limit?.(out.length);
  }
  if (argi < args.length) {
    out += "%!(EXTRA " + args.slice(argi).map((a) => {
      const k = kindOf(a);
      return k === "nil" || k === "invalid" ? "<nil>" : `${typeName(a)}=${fmtArg(a, PLAIN, 1)}`;
    }).join(", ") + ")";
  }
  return out;
}
