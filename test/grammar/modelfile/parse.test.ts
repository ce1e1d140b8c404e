import { test } from "node:test";
import assert from "node:assert/strict";
import { SyntaxError_ } from "../../../core/errors.js";
import {
  decodeModelfile,
  editDistance,
  formatDiagnostic,
  nearest,
  parseModelfile,
  stripLoc,
  type Command,
} from "../../../grammar/modelfile/index.js";
import { ModelfileParser } from "../../../grammar/modelfile/parser.js";
import { LineMap } from "../../../grammar/modelfile/text.js";

function commands(text: string): Command[] {
  const r = parseModelfile(text);
  assert.deepEqual(r.diagnostics.filter((d) => d.severity === "error"), [], text);
  return stripLoc(r.ast).commands;
}

function valueOf(line: string): string {
  const c = commands(`FROM m\n${line}\n`)[1]!;
  return "value" in c ? c.value : c.content;
}

function errors(text: string): string[] {
  return parseModelfile(text).diagnostics.filter((d) => d.severity === "error").map((d) => `${d.line}:${d.column} ${d.message}`);
}

test("the grammar passes Chevrotain's own validations", () => {
  assert.doesNotThrow(() => new ModelfileParser({ validate: true }));
});

test("decodeModelfile: UTF-8 with and without BOM, UTF-16 LE/BE with BOM", () => {
  const text = "FROM m\nSYSTEM é😀\n";
  const utf8 = Buffer.from(text);
  assert.equal(decodeModelfile(utf8), text);
  assert.equal(decodeModelfile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8])), text);
  const le = Buffer.from(text, "utf16le");
  assert.equal(decodeModelfile(Buffer.concat([Buffer.from([0xff, 0xfe]), le])), text);
  const be = Buffer.from(le).swap16();
  assert.equal(decodeModelfile(Buffer.concat([Buffer.from([0xfe, 0xff]), be])), text);
  assert.equal(decodeModelfile(new Uint8Array()), "");
});

test("decodeModelfile refuses bytes that are not text in their encoding", () => {
  assert.throws(() => decodeModelfile(Buffer.from([0x46, 0xff, 0x0a])), (e) => e instanceof SyntaxError_ && e.code === "MODELFILE_INVALID");
  assert.throws(() => decodeModelfile(Buffer.from([0xff, 0xfe, 0x46])), SyntaxError_);
});

test("a BOM left in the text is skipped and takes no column", () => {
  const r = parseModelfile("\ufeffFRM x\nFROM m\n");
  assert.equal(r.diagnostics[0]!.column, 1);
  assert.equal(r.ast.commands[0]!.loc!.column, 1);
});

test("compat.md value rules", () => {
  assert.equal(valueOf("FROM foo # x"), "foo # x");
  assert.equal(valueOf('SYSTEM """"""'), "");
  assert.equal(valueOf('SYSTEM ""'), "");
  assert.equal(valueOf('SYSTEM abc "def"'), 'abc "def"');
  assert.equal(valueOf('SYSTEM "a\\"b"'), 'a\\"b');
  assert.equal(valueOf("SYSTEM a\\nb"), "a\\nb");
  assert.equal(valueOf("SYSTEM    spaced out   \t"), "spaced out");
  assert.equal(valueOf('SYSTEM "  inner  "  '), "  inner  ");
  assert.equal(valueOf('SYSTEM """multi\nline"""'), "multi\nline");
  assert.equal(valueOf('SYSTEM "multi\n\nline"'), "multi\n\nline");
  assert.equal(valueOf('SYSTEM "He said "hi"'), 'He said "hi');
  assert.equal(valueOf('SYSTEM """a"""b"""'), 'a"""b');
  assert.equal(valueOf('MESSAGE user "# not a comment"'), "# not a comment");
  assert.deepEqual(errors('FROM m\nSYSTEM "abc" def\n'), ["2:14 unexpected text after closing quote"]);
  assert.deepEqual(errors('FROM m\nTEMPLATE """x""" extra\n'), ["2:18 unexpected text after closing quote"]);
});

test("command words are case-insensitive and must be followed by a space or tab", () => {
  assert.deepEqual(commands("fRoM\tm\nsystem x\n"), [{ kind: "from", value: "m" }, { kind: "system", value: "x" }]);
  assert.deepEqual(errors("FROM m\nSYSTEM:x\n"), ['2:1 unknown instruction "SYSTEM:x"']);
  assert.equal(parseModelfile("FROM m\nSYSTEM:x\n").diagnostics[0]!.hint, "put a space or tab after SYSTEM");
});

test("FROM may come anywhere; without one the file is refused", () => {
  assert.deepEqual(errors("PARAMETER top_k 1\nFROM m\n"), []);
  assert.deepEqual(errors("PARAMETER top_k 1\n"), ["1:1 no FROM line"]);
  assert.deepEqual(errors(""), ["1:1 no FROM line"]);
  // a misspelt FROM explains itself; "no FROM line" would only repeat it
  assert.deepEqual(errors("FORM m\n"), ['1:1 unknown instruction "FORM"']);
});

test("CRLF counts as one line break and lone CR is a character", () => {
  const r = parseModelfile('FROM m\r\nSYSTEM """a\r\nb"""\r\n\r\nFRM x\r\n');
  assert.equal(r.diagnostics[0]!.line, 5);
  assert.deepEqual(stripLoc(r.ast).commands[1], { kind: "system", value: "a\r\nb" });
  const lone = parseModelfile("FROM m\rSYSTEM x\n");
  assert.deepEqual(stripLoc(lone.ast).commands, [{ kind: "from", value: "m\rSYSTEM x" }]);
});

test("positions: command, parameter name and value, inside quotes", () => {
  const r = parseModelfile('FROM m\n  PARAMETER  stop   "<end>"\n');
  const p = r.ast.commands[1]!;
  assert.deepEqual(p.loc, { line: 2, column: 3 });
  assert.deepEqual(p.kind === "parameter" && p.nameLoc, { line: 2, column: 14 });
  assert.deepEqual(p.valueLoc, { line: 2, column: 22 });
});

test("LineMap counts code points", () => {
  const m = new LineMap("a😀b\nc");
  assert.deepEqual(m.loc(3), { line: 1, column: 3 });
  assert.deepEqual(m.loc(5), { line: 2, column: 1 });
  assert.equal(m.spanLength(0, 100), 3);
});

test("edit distance and nearest names", () => {
  assert.equal(editDistance("FRM", "FROM"), 1);
  assert.equal(editDistance("FORM", "FROM"), 1);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(nearest("temprature", ["top_k", "temperature"]), "temperature");
  assert.equal(nearest("xyz", ["FROM", "SYSTEM"]), undefined);
});

test("formatDiagnostic renders position, source line, caret and hint", () => {
  const text = "FROM m\nPARAMETER temperature 0.5\nFRM llama3\n";
  const d = parseModelfile(text).diagnostics[0]!;
  assert.equal(formatDiagnostic(d, text, "Modelfile"), 'Modelfile:3:1: error: unknown instruction "FRM"\nFRM llama3\n^~~\n  hint: did you mean FROM?');
  const t2 = "FROM m\n\tPARAMETER temprature 1\r\n";
  const d2 = parseModelfile(t2).diagnostics[0]!;
  assert.equal(formatDiagnostic(d2, t2, "x/Modelfile"), 'x/Modelfile:2:12: error: unknown parameter "temprature"\n\tPARAMETER temprature 1\n\t          ^~~~~~~~~~\n  hint: did you mean temperature?');
  assert.equal(formatDiagnostic({ severity: "error", line: 1, column: 1, length: 5, message: "no FROM line" }, ""), "Modelfile:1:1: error: no FROM line\n\n^");
});
