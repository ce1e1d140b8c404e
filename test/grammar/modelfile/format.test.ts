// The formatter: quoting rules, what cannot be represented, and the round-trip property
// parse(format(ast)) == ast (positions aside) for generated ASTs.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { SyntaxError_ } from "../../../core/errors.js";
import {
  canonicalOrder,
  formatModelfile,
  isRepresentable,
  parseModelfile,
  quoteValue,
  stripLoc,
  type Command,
  type ModelfileAst,
} from "../../../grammar/modelfile/index.js";

/**
 * The unrepresentable values, as format.ts documents them, written independently of the formatter: a
 * line other than the last that, without the `\r` of a `\r\n` and trailing spaces and tabs, ends with `"""`.
 */
function documentedUnrepresentable(v: string): boolean {
  const lines = v.split("\n");
  return lines.slice(0, -1).some((l) => l.replace(/\r$/, "").replace(/[ \t]+$/, "").endsWith('"""'));
}

const PIECES = ['"', '"""', '""', " ", "\t", "\n", "\r\n", "\r", "#", "a", "b c", "é", "😀", "\\", "\\n", "{{ .Prompt }}", "FROM x", "# c"];
const tricky = fc.array(fc.constantFrom(...PIECES), { maxLength: 8 }).map((xs) => xs.join(""));
const anyText = fc.oneof(tricky, fc.string({ unit: "binary", maxLength: 12 }), fc.string({ maxLength: 6 }));
const value = anyText.filter((v) => !documentedUnrepresentable(v));

const TEXT_KINDS = ["from", "adapter", "template", "system", "license", "draft", "renderer", "parser"] as const;
const semver = fc.tuple(fc.nat(99), fc.nat(99), fc.nat(99)).map(([a, b, c]) => `${a}.${b}.${c}`);
const typedParam = fc.oneof(
  fc.record({ name: fc.constantFrom("num_ctx", "seed", "top_k", "mirostat"), value: fc.integer().map(String) }),
  fc.record({ name: fc.constantFrom("temperature", "top_p", "tfs_z"), value: fc.double({ noNaN: true, noDefaultInfinity: true }).map(String) }),
  fc.record({ name: fc.constantFrom("use_mmap", "use_mlock", "numa"), value: fc.constantFrom("true", "F", "0", "1", "t", "FALSE") }),
  fc.record({ name: fc.constant("stop"), value }),
);
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constantFrom(...TEXT_KINDS), value }),
  fc.record({ kind: fc.constant("requires" as const), value: semver }),
  typedParam.map(({ name, value }) => ({ kind: "parameter" as const, name, value })),
  fc.record({ kind: fc.constant("message" as const), role: fc.constantFrom("system" as const, "user" as const, "assistant" as const), content: value }),
);
const ast: fc.Arbitrary<ModelfileAst> = fc
  .tuple(value, fc.array(command, { maxLength: 10 }), fc.nat())
  .map(([from, rest, at]) => {
    const commands = [...rest];
    commands.splice(at % (rest.length + 1), 0, { kind: "from", value: from });
    return { commands };
  });

test("quoting follows compat.md", () => {
  const cases: [string, string][] = [
    ["llama3", "llama3"],
    ["foo # x", "foo # x"],
    ['abc "def" ghi', 'abc "def" ghi'],
    ["", '""'],
    [" lead", '" lead"'],
    ["trail\t", '"trail\t"'],
    ["two\nlines", '"two\nlines"'],
    ['"quoted"', '""""quoted""""'],
    ['ends with "', '"""ends with """"'],
    ['say "hi"\nthen', '"""say "hi"\nthen"""'],
    ["cr\r", '"cr\r"'],
    ['a"""b', 'a"""b'],
  ];
  for (const [v, written] of cases) assert.equal(quoteValue(v), written, JSON.stringify(v));
});

test("values with an inner line ending in \"\"\" cannot be written, and the formatter says so", () => {
  for (const v of ['a"""\nb', 'x """  \r\ny', '"""\n']) {
    assert.equal(isRepresentable(v), false, JSON.stringify(v));
    assert.throws(() => formatModelfile({ commands: [{ kind: "system", value: v }] }), SyntaxError_);
  }
  assert.equal(isRepresentable('a"""\r\tb\nc'), true);
});

test("isRepresentable agrees with the documented description", () => {
  fc.assert(fc.property(anyText, (v) => isRepresentable(v) === !documentedUnrepresentable(v)), { numRuns: 500 });
});

test("the formatter refuses names and roles it cannot write", () => {
  const bad: Command[] = [
    { kind: "parameter", name: "two words", value: "1" },
    { kind: "parameter", name: "Upper", value: "1" },
    { kind: "parameter", name: "", value: "1" },
    { kind: "message", role: "bot" as "user", content: "x" },
  ];
  for (const c of bad) assert.throws(() => formatModelfile({ commands: [c] }), SyntaxError_);
});

test("formatModelfile writes the canonical order, one line per stop entry", () => {
  const text = formatModelfile({
    commands: [
      { kind: "message", role: "user", content: "hi" },
      { kind: "parameter", name: "temperature", value: "0.5" },
      { kind: "license", value: "MIT" },
      { kind: "parameter", name: "stop", value: "<b>" },
      { kind: "system", value: " be brief " },
      { kind: "parameter", name: "stop", value: "<a>" },
      { kind: "requires", value: "0.14.0" },
      { kind: "template", value: "{{ .Prompt }}\n" },
      { kind: "adapter", value: "./a.gguf" },
      { kind: "from", value: "llama3" },
    ],
  });
  assert.equal(
    text,
    [
      "FROM llama3",
      "ADAPTER ./a.gguf",
      'TEMPLATE "{{ .Prompt }}\n"',
      'SYSTEM " be brief "',
      "PARAMETER stop <b>",
      "PARAMETER stop <a>",
      "PARAMETER temperature 0.5",
      "LICENSE MIT",
      "MESSAGE user hi",
      "REQUIRES 0.14.0",
      "",
    ].join("\n"),
  );
});

test("canonicalOrder is a stable grouping: every kind and every parameter keeps its own order", () => {
  fc.assert(
    fc.property(ast, (a) => {
      const c = canonicalOrder(a).commands;
      assert.equal(c.length, a.commands.length);
      assert.equal(c[0]!.kind, "from");
      const key = (x: Command) => (x.kind === "parameter" ? `p:${x.name}` : x.kind);
      for (const k of new Set(a.commands.map(key))) {
        assert.deepEqual(c.filter((x) => key(x) === k), a.commands.filter((x) => key(x) === k));
      }
      assert.deepEqual(canonicalOrder({ commands: c }).commands, c);
    }),
    { numRuns: 200 },
  );
});

test("property: parse(format(ast)) == ast for canonical ASTs, and == canonicalOrder(ast) for any", () => {
  fc.assert(
    fc.property(ast, (a) => {
      const text = formatModelfile(a);
      const r = parseModelfile(text);
      assert.deepEqual(r.diagnostics.filter((d) => d.severity === "error"), [], text);
      const canonical = canonicalOrder(a);
      assert.deepEqual(stripLoc(r.ast), stripLoc(canonical));
      assert.deepEqual(stripLoc(parseModelfile(formatModelfile(canonical)).ast), stripLoc(canonical));
      assert.equal(formatModelfile(r.ast), text);
    }),
    { numRuns: 400 },
  );
});
