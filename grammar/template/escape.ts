/** The escaping builtins `html`, `js` and `urlquery`, and Go's `encoding/json` (Ollama's `json`). */
import { kindOf, mapKeys, num, structType } from "./values.js";

/** text/template's HTMLEscapeString. */
export function htmlEscape(s: string): string {
  return s.replace(/[<>&'"\0]/g, (c) =>
    c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : c === "'" ? "&#39;" : c === '"' ? "&#34;" : "\ufffd",
  );
}

const JS_NON_PRINT = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** text/template's JSEscapeString. */
export function jsEscape(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case "\\": out += "\\\\"; continue;
      case "'": out += "\\'"; continue;
      case '"': out += '\\"'; continue;
      case "<": out += "\\u003C"; continue;
      case ">": out += "\\u003E"; continue;
      case "&": out += "\\u0026"; continue;
      case "=": out += "\\u003D"; continue;
    }
    if (c < 0x20) out += "\\u00" + c.toString(16).toUpperCase().padStart(2, "0");
    else if (c < 0x80) out += ch;
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\uFFFD";
    else if (ch !== " " && JS_NON_PRINT.test(ch)) out += "\\u" + c.toString(16).toUpperCase().padStart(4, "0");
    else out += ch;
  }
  return out;
}

/** net/url's QueryEscape. */
export function urlQueryEscape(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    const ch = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(ch)) out += ch;
    else if (b === 0x20) out += "+";
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

class Unsupported extends Error {}

/** Go's json.Marshal; Ollama ignores its error, so an unencodable value (NaN, a func) gives "". */
export function goJson(v: unknown): string {
  try {
    return enc(v, 0);
  } catch (e) {
    if (e instanceof Unsupported) return "";
    throw e;
  }
}

function enc(v: unknown, depth: number): string {
  if (depth > 1000) throw new Unsupported("too deep");
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return "null";
    case "bool":
      return v ? "true" : "false";
    case "int":
    case "float": {
      const n = num(v);
      if (!Number.isFinite(n)) throw new Unsupported("unsupported value");
      return Object.is(n, -0) ? "-0" : JSON.stringify(n);
    }
    case "string":
      return jsonString(v as string);
    case "slice":
      return "[" + (v as unknown[]).map((e) => enc(e, depth + 1)).join(",") + "]";
    case "map": {
      const m = v as Record<string, unknown>;
      return "{" + mapKeys(m).map((k) => jsonString(k) + ":" + enc(m[k], depth + 1)).join(",") + "}";
    }
    case "struct": {
      const o = v as Record<string, unknown>;
      const parts: string[] = [];
      for (const f of structType(v)!.fields) {
        if (f.json === "-") continue;
        const x = o[f.name];
        if (f.omitempty && isEmpty(x)) continue;
        parts.push(jsonString(f.json ?? f.name) + ":" + enc(x, depth + 1));
      }
      return "{" + parts.join(",") + "}";
    }
    case "func":
      throw new Unsupported("unsupported type");
  }
}

function isEmpty(v: unknown): boolean {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return true;
    case "bool":
      return v === false;
    case "int":
    case "float":
      return num(v) === 0;
    case "string":
      return v === "";
    case "slice":
      return (v as unknown[]).length === 0;
    case "map":
      return mapKeys(v as object).length === 0;
    default:
      return false;
  }
}

/** A JSON string as Go writes it: HTML-safe (`<>&` escaped), U+2028/2029 escaped, lone surrogates → U+FFFD. */
export function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) out += "\ufffd";
    else if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c < 0x20 || c === 0x3c || c === 0x3e || c === 0x26 || c === 0x2028 || c === 0x2029)
      out += "\\u" + c.toString(16).padStart(4, "0");
    else out += s[i]!;
  }
  return out + '"';
}
