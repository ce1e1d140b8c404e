/** Engine behaviour beyond the corpus: structs and stringers, Ollama's functions, tree rewrites, properties. */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import fc from "fast-check";
import {
  GoFloat,
  goStruct,
  isTemplateError,
  parseTemplate,
  withStringer,
  type StructType,
} from "../../../grammar/template/index.js";

const POINT: StructType = { name: "geo.Point", fields: [{ name: "X", json: "x" }, { name: "Y", json: "y", omitempty: true }] };

test("structs print as {a b}, encode JSON in field order with tags, and reject unknown fields", () => {
  const p = goStruct(POINT, { Y: 0, X: 2 });
  assert.equal(parseTemplate("{{ . }}|{{ printf \"%+v\" . }}|{{ json . }}").execute(p), "{2 0}|{X:2 Y:0}|{\"x\":2}");
  assert.throws(() => parseTemplate("{{ .Z }}").execute(p), (e) => isTemplateError(e) && /can't evaluate field Z in type geo\.Point/.test(e.reason));
});

test("a stringer prints with its String(), json ignores it", () => {
  const m = withStringer({ a: 1 }, () => "custom");
  assert.equal(parseTemplate("{{ . }} {{ .a }} {{ json . }} {{ printf \"%s\" . }}").execute(m), "custom 1 {\"a\":1} custom");
});

test("GoFloat keeps float64 semantics for integral values", () => {
  assert.equal(parseTemplate("{{ .F }} {{ printf \"%d\" .F }}").execute({ F: new GoFloat(1e6) }), "1e+06 %!d(float64=1e+06)");
});

test("currentDate and yesterdayDate use the injected clock, YYYY-MM-DD, argument ignored", () => {
  const now = () => new Date(2024, 2, 1, 10, 0, 0);
  assert.equal(parseTemplate("{{ currentDate }} {{ yesterdayDate \"x\" }}").execute({}, { now }), "2024-03-01 2024-02-29");
});

test("toTypeScriptType maps an api.ToolProperty's JSON Schema type; anything else is any", () => {
  const prop: StructType = { name: "api.ToolProperty", fields: [{ name: "Type" }] };
  const t = parseTemplate("{{ toTypeScriptType .A }}|{{ toTypeScriptType .B }}|{{ toTypeScriptType .C }}|{{ toTypeScriptType .D }}");
  assert.equal(
    t.execute({ A: goStruct(prop, { Type: "integer" }), B: goStruct(prop, { Type: ["string", "null"] }), C: { Type: "string" }, D: goStruct(prop, { Type: "array" }) }),
    "number|string | null|any|any[]",
  );
});

test("call invokes a function value; its exception is a positioned error", () => {
  const t = parseTemplate("{{ call .F 2 3 }}");
  assert.equal(t.execute({ F: (a: number, b: number) => a * b }), "6");
  assert.throws(() => t.execute({ F: () => { throw new Error("boom"); } }), (e) => isTemplateError(e) && e.reason.includes("error calling call: boom"));
});

test("identifiers: fields, $ chains and variables, in defines too; mentions() ignores case", () => {
  const t = parseTemplate("{{ $.Messages }}{{ range $i, $m := .list }}{{ $m.Role }}{{ end }}{{ define \"x\" }}{{ .Inner.Deep }}{{ end }}");
  assert.deepEqual([...t.identifiers()].sort(), ["$", "$i", "$m", "Deep", "Inner", "Messages", "Role", "list"]);
  assert.ok(t.mentions("messages") && t.mentions("LIST") && !t.mentions("response"));
});

test("withFieldAppended appends {{ .Field }}", () => {
  assert.equal(parseTemplate("a{{ .Prompt }}").withFieldAppended("Response").execute({ Prompt: "p", Response: "r" }), "apr");
});

test("cutAfterField keeps everything up to the first action printing the field", () => {
  const src = "{{ if .S }}S{{ end }}{{ if .P }}[{{ .P }}]{{ .Response }}END{{ else }}E{{ end }}TAIL{{ .Response }}";
  const cut = parseTemplate(src).cutAfterField("Response");
  assert.equal(cut.execute({ S: 1, P: "p", Response: "r" }), "S[p]r");
  assert.equal(cut.execute({ P: "" }), "", "the else branch after the cut point is gone");
  // A template that never prints the field is unchanged.
  assert.equal(parseTemplate("x{{ .A }}").cutAfterField("Response").execute({ A: 1 }), "x1");
});

test("deep recursion through template stops with a positioned error", () => {
  const t = parseTemplate("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}\n{{ template \"r\" . }}");
  assert.throws(() => t.execute({}), (e) => isTemplateError(e) && e.line === 1 && /maximum template depth/.test(e.reason));
});

test("CRLF line ends count as one line in positions", () => {
  assert.throws(() => parseTemplate("a\r\nb\r\n{{ foo }}"), (e) => isTemplateError(e) && e.line === 3 && e.column === 4);
});

test("columns count characters: an emoji or any character outside the BMP is one column", () => {
  assert.throws(() => parseTemplate("😀é{{ foo }}"), (e) => isTemplateError(e) && e.line === 1 && e.column === 6 && e.offset === 6);
  assert.throws(() => parseTemplate("x\n𝔸𝔹 {{ .A.B }}").execute({}), (e) => isTemplateError(e) && e.phase === "exec" && e.line === 2 && e.column === 7);
});

// Property: for a template that parsed, execution on any data either returns a string or throws a
// TemplateError with a position inside the template.
const TEMPLATES = [
  "{{ .A }}{{ .A.B }}{{ .A.B.C }}",
  "{{ range $i, $e := .A }}{{ $i }}{{ $e }}{{ $e.X }}{{ end }}",
  "{{ range .A }}{{ . }}{{ else }}none{{ end }}",
  "{{ with .A }}{{ .B }}{{ else }}{{ .C }}{{ end }}",
  "{{ if and .A (or .B .C) }}{{ len .A }}{{ end }}",
  "{{ index .A 0 }}{{ index .A \"k\" }}",
  "{{ slice .A 1 }}{{ slice .A 0 1 }}",
  "{{ eq .A .B }}{{ lt .A .B }}{{ ne .A 1 }}",
  "{{ printf \"%v %s %d %q %x %5.2f %T\" .A .A .A .A .A .A .A }}",
  "{{ json . }}{{ print . }}{{ println .A .B }}",
  "{{ html .A }}{{ js .A }}{{ urlquery .A }}",
  "{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}",
  "{{ $x := .A }}{{ $x.Y }}{{ with $x }}{{ .Z }}{{ end }}",
  "{{ call .F }}{{ toTypeScriptType .A }}",
  "{{ range .A }}{{ if .B }}{{ break }}{{ end }}{{ continue }}{{ end }}",
  "{{ define \"t\" }}{{ .X }}{{ end }}{{ template \"t\" .A }}{{ block \"b\" . }}{{ .Y }}{{ end }}",
].map((s) => [s, parseTemplate(s)] as const);

test("property: execution returns a string or throws a positioned TemplateError, on any data", () => {
  const data = fc.oneof(
    fc.anything({ withBoxedValues: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true }),
    fc.dictionary(fc.constantFrom("A", "B", "C", "X", "Y", "Z", "F", "k"), fc.anything()),
    fc.record({ A: fc.array(fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null), fc.object())), B: fc.anything() }),
  );
  fc.assert(
    fc.property(fc.constantFrom(...TEMPLATES), data, ([src, t], d) => {
      try {
        assert.equal(typeof t.execute(d), "string");
      } catch (e) {
        assert.ok(isTemplateError(e), `not a TemplateError: ${String(e)}`);
        assert.equal(e.phase, "exec");
        assert.ok(e.line >= 1 && e.column >= 1 && e.offset <= src.length, e.message);
      }
    }),
    { numRuns: 1500 },
  );
});

test("property: parsing arbitrary text returns a Template or throws a positioned parse error", () => {
  const piece = fc.constantFrom("{{", "}}", "{{-", " -}}", ".A", "$x", ":=", "|", "(", ")", "if", "else", "end", "range", "\"s\"", "`r`", "1", " ", "\n", "/*", "*/", "print", "x");
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 20 }).map((a) => a.join("")), (src) => {
      try {
        parseTemplate(src).execute({ A: [1] });
      } catch (e) {
        assert.ok(isTemplateError(e), `not a TemplateError: ${String(e)}`);
        assert.ok(e.line >= 1 && e.column >= 1 && e.offset <= src.length, e.message);
      }
    }),
    { numRuns: 1500 },
  );
});
