/**
 * The converter's own behaviour: what each covered keyword admits and rejects (checked with the
 * recognizer, no model), what it refuses and how the refusal reads, and the limits that keep a hostile
 * schema from producing a grammar too large to sample with.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { LIMITS, matches, parseGbnf, schemaToGbnf, SchemaUnsupported } from "../../../grammar/jsonschema/index.js";

const grammarOf = (schema: unknown) => parseGbnf(schemaToGbnf(schema));
function check(schema: unknown, admitted: unknown[], rejected: unknown[]): void {
  const g = grammarOf(schema);
  for (const v of admitted) assert.equal(matches(g, typeof v === "string" && v.startsWith("RAW:") ? v.slice(4) : JSON.stringify(v)), true, `admits ${JSON.stringify(v)}`);
  for (const v of rejected) assert.equal(matches(g, typeof v === "string" && v.startsWith("RAW:") ? v.slice(4) : JSON.stringify(v)), false, `rejects ${JSON.stringify(v)}`);
}
function refuses(schema: unknown, keyword: string, message?: RegExp): void {
  assert.throws(() => schemaToGbnf(schema), (e: unknown) => {
    assert.ok(e instanceof SchemaUnsupported, String(e));
    assert.equal(e.keyword, keyword);
    assert.equal(e.status, 400);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test("integers: bounds and exclusive bounds, no exponent, no leading zero, no -0", () => {
  check({ type: "integer", minimum: 0, maximum: 9 }, [0, 5, 9], [-1, 10, "RAW:-4485E65", "RAW:1e0", "RAW:05", "RAW:-0", 1.5]);
  check({ type: "integer", exclusiveMinimum: -3, exclusiveMaximum: 120 }, [-2, 0, 119], [-3, 120, -10, 1000]);
  check({ type: "integer", minimum: 1, exclusiveMinimum: true }, [2, 12345], [1, 0, -5]); // draft 4's boolean form
  check({ type: "integer", minimum: 2.5, maximum: 7.5 }, [3, 7], [2, 8]);
});

test("numbers: decimal bounds, inclusive and exclusive, both signs", () => {
  check({ type: "number", minimum: -1.5, maximum: 2.25 }, [-1.5, -1, 0, 0.5, 2.25, "RAW:2.2500", "RAW:2"], [-1.51, 2.26, 3, -2, "RAW:-0"]);
  check({ type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 }, [0.5, 0.001, 0.999], [0, 1, "RAW:0.0", "RAW:1.00", -0.5]);
  check({ type: "number", minimum: 1.2, maximum: 1.35 }, [1.2, 1.3, 1.35, "RAW:1.25"], [1.19, 1.36, 1.4, 1]);
  refuses({ type: "number", minimum: 1e-9 }, "minimum", /exponent/);
  refuses({ type: "integer", minimum: 5, maximum: 4 }, "maximum", /no integer/);
});

test("strings: lengths, escapes and formats", () => {
  check({ type: "string", minLength: 2, maxLength: 3 }, ["ab", "abc", 'a"', "é€"], ["a", "abcd", ""]);
  check({ type: "string", format: "date" }, ["2024-02-28", "1999-12-31"], ["2024-02-30", "2024-13-01", "24-01-01", ""]);
  check({ type: "string", format: "date-time" }, ["2024-05-06T07:08:09Z", "2024-05-06T07:08:09.5+02:00"], ["2024-05-06 07:08:09Z", "2024-05-06T25:00:00Z"]);
  check({ type: "string", format: "uuid" }, ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567e89b12d3a456426614174000", "xyz"]);
  check({ type: "string", format: "email" }, ["ann@example.com", "a.b+c@mail.example.org"], ["ann", "ann@", "@example.com", "ann@example"]);
  check({ type: "string", format: "uri" }, ["https://example.com/a/b?x=1#top", "http://127.0.0.1:8080/"], ["example.com", "not a uri", ""]);
  check({ type: "string", format: "ipv4" }, ["10.0.0.1", "255.255.255.255"], ["256.1.1.1", "1.2.3", "01.2.3.4"]);
  refuses({ type: "string", format: "ipv6" }, "format", /not supported \(supported: .*uuid/);
});

test("pattern: a grammar of the regular expression, unanchored sides included", () => {
  check({ type: "string", pattern: "^[A-Z]{2}-\\d{3}$" }, ["AB-123"], ["AB-12", "ab-123", "XAB-123", "AB-1234"]);
  check({ type: "string", pattern: "\\d+" }, ["abc1", "7", "x99y"], ["abc", ""]);
  check({ type: "string", pattern: "^a|b$" }, ["ax", "xb", "a", "b"], ["xa", "bx", "c"]);
  check({ type: "string", pattern: '^"\\\\.$' }, ['"\\x', '"\\\\'], ['"x', '\\"x']);
  check({ type: "string", pattern: "^(?:foo|bar)+baz?$" }, ["foobarba", "barbaz"], ["baz", "fooba z"]);
  check({ type: "string", pattern: "^[^a-c]+$" }, ["xyz", 'q"', "\n"], ["abc", "xa", ""]);
  refuses({ type: "string", pattern: "^(?=a)" }, "pattern", /lookaround/);
  refuses({ type: "string", pattern: "^(a)\\1$" }, "pattern", /backreference/);
  refuses({ type: "string", pattern: "^(a$" }, "pattern", /not a valid regular expression/);
  refuses({ type: "string", pattern: "^a$", maxLength: 3 }, "pattern", /together with/);
});

test("objects: required ones first, then any subset of the optional ones, in order; extra ones only when allowed", () => {
  const schema = { type: "object", properties: { b: { type: "string" }, a: { type: "integer" }, c: { type: "boolean" } }, required: ["a"] };
  check(schema, [{ a: 1 }, { a: 1, b: "x" }, { a: 1, c: true }, { a: 1, b: "x", c: false }], [{}, { b: "x" }, { a: "1" }, { a: 1, d: 2 }]);
  check(
    { type: "object", properties: { a: { type: "integer" } }, additionalProperties: { type: "string" } },
    [{}, { a: 1 }, { a: 1, z: "s" }, { aa: "s" }, { "": "s" }],
    [{ a: "s" }, { z: 1 }, { a: 1, a2: 2 }],
  );
  check({ type: "object", additionalProperties: false }, [{}], [{ a: 1 }]);
});

test("arrays: items, tuples, counts", () => {
  check({ type: "array", items: { type: "integer" }, minItems: 1, maxItems: 3 }, [[1], [1, 2, 3]], [[], [1, 2, 3, 4], ["a"]]);
  check({ type: "array", prefixItems: [{ type: "string" }, { type: "number" }], items: false }, [["a", 1]], [["a"], [1, "a"], ["a", 1, 2]]);
  check({ type: "array", items: [{ type: "string" }], additionalItems: { type: "boolean" } }, [["a"], ["a", true, false]], [["a", 1], [true]]);
});

test("anyOf, nullable and type lists (zod's .nullable() and unions) admit each alternative, not null alone", () => {
  const schema = { anyOf: [{ type: "object", properties: { kind: { const: "a" }, n: { type: "integer", minimum: 0 } }, required: ["kind", "n"] }, { type: "null" }] };
  check(schema, [null, { kind: "a", n: 3 }], [{ kind: "b", n: 3 }, { kind: "a", n: -1 }, "a"]);
  check({ type: ["string", "null"], maxLength: 2 }, [null, "ab"], ["abc", 1]);
  check({ type: "string", nullable: true }, [null, "x"], [1]);
});

test("oneOf is honoured when its alternatives cannot overlap, refused when they can", () => {
  const union = {
    oneOf: [
      { type: "object", properties: { type: { const: "circle" }, r: { type: "number" } }, required: ["type", "r"], additionalProperties: false },
      { type: "object", properties: { type: { const: "square" }, side: { type: "number" } }, required: ["type", "side"], additionalProperties: false },
    ],
  };
  check(union, [{ type: "circle", r: 1 }, { type: "square", side: 2 }], [{ type: "circle", side: 2 }, { type: "triangle" }]);
  check({ oneOf: [{ type: "string" }, { type: "integer" }] }, ["a", 1], [true, 1.5]);
  refuses({ oneOf: [{ type: "integer" }, { minimum: 2 }] }, "oneOf", /may both match/);
});

test("allOf merges, $ref resolves locally (recursion included), $defs and definitions", () => {
  check(
    { allOf: [{ type: "object", properties: { a: { type: "integer" } }, required: ["a"] }, { properties: { b: { type: "string" } }, required: ["b"] }] },
    [{ a: 1, b: "x" }],
    [{ a: 1 }, { b: "x" }],
  );
  const tree = { $defs: { node: { type: "object", properties: { v: { type: "integer" }, kids: { type: "array", items: { $ref: "#/$defs/node" } } }, required: ["v"] } }, $ref: "#/$defs/node" };
  check(tree, [{ v: 1 }, { v: 1, kids: [{ v: 2, kids: [{ v: 3 }] }] }], [{ v: 1, kids: [{}] }, { kids: [] }]);
  refuses({ $ref: "https://example.com/schema.json" }, "$ref", /local references/);
  refuses({ $ref: "#/$defs/missing" }, "$ref", /points at nothing/);
});

test("enum and const: exactly the listed values that fit the rest of the schema", () => {
  check({ enum: ["red", 42, null, ["x"], { k: 1 }] }, ["red", 42, null, ["x"], { k: 1 }], ["blue", 43, ["y"]]);
  check({ type: "string", enum: ["a", 1] }, ["a"], [1]);
  check({ const: ' \r \n " \\ ' }, [' \r \n " \\ '], [" "]);
  refuses({ type: "string", enum: [1, 2] }, "enum", /no listed value/);
});

test("keywords a grammar cannot honour are refused by name, never ignored", () => {
  for (const [schema, kw] of [
    [{ type: "integer", multipleOf: 3 }, "multipleOf"],
    [{ type: "array", uniqueItems: true }, "uniqueItems"],
    [{ not: { type: "string" } }, "not"],
    [{ type: "object", patternProperties: { "^x": {} } }, "patternProperties"],
    [{ properties: { a: { if: { type: "string" }, then: { minLength: 1 } } } }, "if"],
    [{ type: "object", minProperties: 1 }, "minProperties"],
  ] as [unknown, string][]) refuses(schema, kw, new RegExp(`"${kw}"`));
  refuses({ type: "kaboom" }, "type", /not a JSON Schema type/);
  // annotations and unknown keywords are not constraints
  check({ type: "integer", title: "n", description: "d", examples: [1], default: 1, "x-extra": true }, [1], ["1"]);
});

test("a hostile schema is refused rather than turned into a huge grammar", () => {
  refuses({ type: "string", maxLength: LIMITS.repeat + 1 }, "maxLength", /above/);
  refuses({ type: "array", minItems: 1e9 }, "minItems", /above/);
  let deep: unknown = { type: "integer" };
  for (let i = 0; i < LIMITS.depth + 5; i++) deep = { type: "array", items: deep };
  assert.throws(() => schemaToGbnf(deep), SchemaUnsupported);
  refuses({ allOf: [{ $ref: "#" }] }, "$ref", /too deep/);
});
