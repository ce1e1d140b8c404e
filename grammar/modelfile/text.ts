/**
 * Text-level helpers of the Modelfile grammar: decoding bytes to text, mapping offsets to true
 * line:column positions, and the quoted-value scan shared by the lexer and the formatter.
 *
 * Line breaks are `\n` and `\r\n` (one break each). A lone `\r` is an ordinary character. Columns count
 * Unicode code points, so a caret lands under the right character whatever the UTF-16 length.
 */
import { SyntaxError_ } from "../../core/errors.js";
import type { Loc } from "./ast.js";

/**
 * Decodes a Modelfile's bytes: UTF-8 with or without a BOM, UTF-16 LE or BE with a BOM. The BOM is
 * dropped. Throws a `SyntaxError_` (MODELFILE_INVALID) when the bytes are not valid text in that
 * encoding: replacement characters would silently change a template.
 */
export function decodeModelfile(bytes: Uint8Array): string {
  let encoding = "utf-8";
  let start = 0;
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) start = 3;
  else if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) (encoding = "utf-16le"), (start = 2);
  else if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) (encoding = "utf-16be"), (start = 2);
  try {
    return new TextDecoder(encoding, { fatal: true, ignoreBOM: true }).decode(bytes.subarray(start));
  } catch (e) {
    throw new SyntaxError_("MODELFILE_INVALID", `Modelfile is not valid ${encoding.toUpperCase()} text`, {
      cause: e,
    });
  }
}

/** Number of code points in `text[from, to)`. */
export function codePointCount(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    // a high surrogate followed by a low one is one code point
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Offset → 1-based line and code-point column. A leading BOM character takes no column. */
export class LineMap {
  private readonly starts: number[] = [];

  constructor(readonly text: string) {
    this.starts.push(text.charCodeAt(0) === 0xfeff ? 1 : 0);
    for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) this.starts.push(i + 1);
  }

  get lineCount(): number {
    return this.starts.length;
  }

  /** Offset of the first character of a 1-based line. */
  lineStart(line: number): number {
    return this.starts[Math.min(Math.max(line, 1), this.starts.length) - 1]!;
  }

  /** Offset just past the content of a 1-based line (before its `\n` or `\r\n`). */
  lineEnd(line: number): number {
    return contentEnd(this.text, this.lineStart(line));
  }

  loc(offset: number): Loc {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    const start = this.starts[lo]!;
    return { line: lo + 1, column: codePointCount(this.text, start, Math.max(offset, start)) + 1 };
  }

  /** Code points from `offset` to `min(end, end of offset's line)`, at least 1. */
  spanLength(offset: number, end: number): number {
    const stop = Math.min(end, contentEnd(this.text, offset));
    return Math.max(1, codePointCount(this.text, offset, stop));
  }
}

/** End of the line content starting at or before `from`: the offset of its `\n`, or of the `\r` of a `\r\n`. */
export function contentEnd(text: string, from: number): number {
  const nl = text.indexOf("\n", from);
  if (nl === -1) return text.length;
  return nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
}

/** True for the whitespace of the Modelfile language: space and tab only. */
export function isBlank(ch: number): boolean {
  return ch === 32 || ch === 9;
}

/** Offset past `end` with trailing spaces and tabs removed (not going below `floor`). */
export function trimEnd(text: string, floor: number, end: number): number {
  while (end > floor && isBlank(text.charCodeAt(end - 1))) end--;
  return end;
}

export type QuoteScan =
  | { closed: true; triple: boolean; valueStart: number; valueEnd: number; end: number }
  | { closed: false; triple: boolean; junkAt?: number };

/**
 * Scans a quoted value whose opening quote is at `start` (`"""` when three quotes are there, else `"`).
 * The value ends at the first line end (a `\n`, `\r\n` or the end of the text) where the text from the
 * opening quote, without trailing spaces and tabs, is at least two delimiters long and ends with the
 * delimiter; the value is what lies between the opening and that closing delimiter. There are no
 * escapes. When no line end balances, the value is unterminated; `junkAt` then points at text that
 * follows a closing delimiter on the opening line (`SYSTEM "abc" def`), the likely mistake.
 */
export function scanQuoted(text: string, start: number): QuoteScan {
  const triple = text.startsWith('"""', start);
  const delim = triple ? '"""' : '"';
  const d = delim.length;
  for (let pos = start; ; ) {
    const lineEnd = contentEnd(text, pos);
    const e = trimEnd(text, start, lineEnd);
    if (e - start >= 2 * d && text.startsWith(delim, e - d)) {
      return { closed: true, triple, valueStart: start + d, valueEnd: e - d, end: e };
    }
    const nl = text.indexOf("\n", lineEnd);
    if (nl === -1) break;
    pos = nl + 1;
  }
  const firstEnd = contentEnd(text, start);
  const close = text.indexOf(delim, start + d);
  if (close !== -1 && close < firstEnd) {
    let j = close + d;
    while (j < firstEnd && (isBlank(text.charCodeAt(j)) || text.charCodeAt(j) === 34)) j++;
    if (j < firstEnd) return { closed: false, triple, junkAt: j };
  }
  return { closed: false, triple };
}
