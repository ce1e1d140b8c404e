/**
 * The Modelfile lexer (Chevrotain, multi-mode).
 *
 *  - `line` mode, where a command may start: blanks, line ends and comments are skipped; a command word
 *    (case-insensitive, then a blank, line end or end of input) switches to `value` mode, or to `name`
 *    mode for PARAMETER and MESSAGE; any other word is an `UnknownWord` whose rest of line is still lexed
 *    as a value, so a quoted multi-line value after a misspelt command is skipped as one unit.
 *  - `name` mode: the parameter name or message role, then `value` mode.
 *  - `value` mode: one value (quoted, possibly multi-line, or bare to the end of the line, trimmed), then
 *    the line end returns to `line` mode. `#` is literal here.
 *
 * Positions are offsets only; `LineMap` turns them into line:column.
 */
import type { CustomPatternMatcherFunc, TokenType } from "chevrotain";
import { createToken, Lexer } from "./chevrotain.js";
import { contentEnd, scanQuoted, trimEnd } from "./text.js";

/** Payload of a QuotedValue token. */
export interface QuotedPayload {
  triple: boolean;
  value: string;
  /** offset of the first character inside the quotes */
  valueStart: number;
}

/** Payload of an UnterminatedValue token. */
export interface UnterminatedPayload {
  triple: boolean;
  junkAt?: number;
}

function sticky(source: string): CustomPatternMatcherFunc {
  const re = new RegExp(source, "y");
  return (text, offset) => {
    re.lastIndex = offset;
    return re.exec(text);
  };
}

/** A word: characters other than space, tab and line ends (a lone `\r` is a character). */
const WORD = "(?:[^ \\t\\r\\n]|\\r(?!\\n))+";

export const LineEnd = createToken({ name: "LineEnd", pattern: Lexer.NA });
export const AnyValue = createToken({ name: "AnyValue", pattern: Lexer.NA });
export const TextKeyword = createToken({ name: "TextKeyword", pattern: Lexer.NA });

const Blank = createToken({ name: "Blank", pattern: /[ \t]+/, group: Lexer.SKIPPED });
const Bom = createToken({
  name: "Bom",
  pattern: { exec: (text, offset) => (offset === 0 && text.charCodeAt(0) === 0xfeff ? ["\ufeff"] : null) },
  start_chars_hint: ["\ufeff"],
  line_breaks: false,
  group: Lexer.SKIPPED,
});
export const Newline = createToken({ name: "Newline", pattern: /\r?\n/, line_breaks: true, categories: [LineEnd] });
const NameEnd = createToken({ name: "NameEnd", pattern: /\r?\n/, line_breaks: true, pop_mode: true, categories: [LineEnd] });
const ValueEnd = createToken({ name: "ValueEnd", pattern: /\r?\n/, line_breaks: true, pop_mode: true, categories: [LineEnd] });
const Comment = createToken({ name: "Comment", pattern: { exec: sticky("#(?:[^\\r\\n]|\\r(?!\\n))*") }, start_chars_hint: ["#"], line_breaks: false, group: Lexer.SKIPPED });

export const UnknownWord = createToken({ name: "UnknownWord", pattern: { exec: sticky(WORD) }, line_breaks: false, push_mode: "value" });

/** Commands whose single value is kept as text. */
export const TEXT_COMMANDS = ["from", "adapter", "template", "system", "license", "requires", "draft", "renderer", "parser"] as const;
/** Every command word, in the order of the compat table (used for hints). */
export const COMMAND_NAMES = ["FROM", "ADAPTER", "TEMPLATE", "SYSTEM", "PARAMETER", "LICENSE", "MESSAGE", "REQUIRES", "DRAFT", "RENDERER", "PARSER"];

export const TextKeywords: TokenType[] = TEXT_COMMANDS.map((word) =>
  createToken({
    name: word.toUpperCase(),
    pattern: new RegExp(word, "i"),
    longer_alt: UnknownWord,
    push_mode: "value",
    categories: [TextKeyword],
  }),
);
export const ParameterKw = createToken({ name: "PARAMETER", pattern: /parameter/i, longer_alt: UnknownWord, push_mode: "name" });
export const MessageKw = createToken({ name: "MESSAGE", pattern: /message/i, longer_alt: UnknownWord, push_mode: "name" });

export const Name = createToken({ name: "Name", pattern: { exec: sticky(WORD) }, line_breaks: false, pop_mode: true, push_mode: "value" });

export const QuotedValue = createToken({
  name: "QuotedValue",
  pattern: {
    exec: (text, offset) => {
      if (text.charCodeAt(offset) !== 34) return null;
      const scan = scanQuoted(text, offset);
      if (!scan.closed) return null;
      const payload: QuotedPayload = { triple: scan.triple, value: text.slice(scan.valueStart, scan.valueEnd), valueStart: scan.valueStart };
      return Object.assign([text.slice(offset, scan.end)] as [string], { payload });
    },
  },
  start_chars_hint: ['"'],
  line_breaks: true,
  categories: [AnyValue],
});

export const UnterminatedValue = createToken({
  name: "UnterminatedValue",
  pattern: {
    exec: (text, offset) => {
      if (text.charCodeAt(offset) !== 34) return null;
      const scan = scanQuoted(text, offset);
      if (scan.closed) return null;
      const payload: UnterminatedPayload = scan.junkAt === undefined ? { triple: scan.triple } : { triple: scan.triple, junkAt: scan.junkAt };
      return Object.assign([text.slice(offset)] as [string], { payload });
    },
  },
  start_chars_hint: ['"'],
  line_breaks: true,
  categories: [AnyValue],
});

export const BareValue = createToken({
  name: "BareValue",
  pattern: {
    exec: (text, offset) => {
      const end = trimEnd(text, offset, contentEnd(text, offset));
      return end > offset ? [text.slice(offset, end)] : null;
    },
  },
  line_breaks: false,
  categories: [AnyValue],
});

export const lexerDefinition = {
  defaultMode: "line",
  modes: {
    line: [Bom, Blank, Newline, Comment, ...TextKeywords, ParameterKw, MessageKw, UnknownWord],
    name: [Blank, NameEnd, Name],
    value: [Blank, ValueEnd, QuotedValue, UnterminatedValue, BareValue],
  },
};

export const allTokens: TokenType[] = [
  LineEnd, AnyValue, TextKeyword, Bom, Blank, Newline, NameEnd, ValueEnd, Comment, ...TextKeywords,
  ParameterKw, MessageKw, UnknownWord, Name, QuotedValue, UnterminatedValue, BareValue,
];

export const modelfileLexer = new Lexer(lexerDefinition, { positionTracking: "onlyOffset", ensureOptimizations: false });
