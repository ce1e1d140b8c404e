/**
 * The JSON Schema → GBNF converter against two outside suites, used as data:
 * - llama.cpp's own converter tests (tests/test-json-schema-to-grammar.cpp in the llama.cpp source that
 *   node-llama-cpp ships as llama/gitRelease.bundle): every schema llama.cpp accepts, mf accepts, and
 *   every one it refuses, mf refuses;
 * - JSON Schema's test suite (the `json-schema-test-suite` package, draft 4): for each schema in the
 *   covered keywords, the grammar rejects every instance the suite calls invalid, checked by the
 *   recognizer without a model; a schema using a keyword the converter does not cover is refused with
 *   an error naming that keyword, never converted loosely.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { matches, parseGbnf, schemaToGbnf, SchemaUnsupported } from "../../../grammar/jsonschema/index.js";

const require = createRequire(import.meta.url);

function llamaCppCases(): { status: string; name: string; schema: string }[] {
  const bundle = join(dirname(dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")))), "llama", "gitRelease.bundle");
  const dir = mkdtempSync(join(tmpdir(), "mf-lcpp-"));
  try {
    execFileSync("git", ["init", "-q", "--bare", dir]);
    execFileSync("git", ["-C", dir, "fetch", "-q", bundle, "HEAD:refs/heads/bundled"]);
    const src = execFileSync("git", ["-C", dir, "show", "bundled:tests/test-json-schema-to-grammar.cpp"], { encoding: "utf8", maxBuffer: 16 << 20 });
    const re = /(SUCCESS|FAILURE),\s*"([^"]*)",\s*R"""\(([\s\S]*?)\)"""/g;
    return [...src.matchAll(re)].map((m) => ({ status: m[1]!, name: m[2]!, schema: m[3]! }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("llama.cpp's converter cases: mf accepts what llama.cpp accepts and refuses what it refuses", () => {
  const cases = llamaCppCases();
  assert.ok(cases.length >= 70, `${cases.length} cases read from the bundled llama.cpp`);
  const wrong: string[] = [];
  for (const c of cases) {
    let schema: unknown;
    try {
      schema = JSON.parse(c.schema);
    } catch {
      continue; // a case whose schema is not JSON tests the parser, not the converter
    }
    let ok = true;
    try {
      parseGbnf(schemaToGbnf(schema));
    } catch (e) {
      if (!(e instanceof SchemaUnsupported)) throw e;
      ok = false;
    }
    if (ok !== (c.status === "SUCCESS")) wrong.push(`${c.name}: llama.cpp ${c.status}, mf ${ok ? "accepts" : "refuses"}`);
  }
  assert.deepEqual(wrong, []);
});

/** The draft-4 files whose keywords the converter covers (the others are checked for refusal). */
const COVERED = [
  "additionalItems", "additionalProperties", "allOf", "anyOf", "default", "definitions", "enum", "items",
  "maxItems", "maxLength", "maximum", "minItems", "minLength", "minimum", "oneOf", "pattern",
  "properties", "ref", "required", "type",
];
/** Covered files none of whose schemas can be converted: the reason is asserted instead. */
const NONE_CONVERTIBLE: Record<string, string> = {
  definitions: "both schemas refer to the draft-4 meta-schema by URL, and only local references are supported",
  oneOf: "every oneOf there has alternatives that overlap, which a grammar cannot forbid",
};
const UNCOVERED = ["dependencies", "maxProperties", "minProperties", "multipleOf", "not", "patternProperties", "uniqueItems"];

interface Group { description: string; schema: unknown; tests: { description: string; data: unknown; valid: boolean }[] }
const suiteDir = join(dirname(require.resolve("json-schema-test-suite/package.json")), "tests", "draft4");
const load = (name: string): Group[] => JSON.parse(readFileSync(join(suiteDir, `${name}.json`), "utf8")) as Group[];

test("the draft-4 suite's files are all accounted for, covered or refused", () => {
  const files = readdirSync(suiteDir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
  assert.deepEqual(files.filter((f) => !COVERED.includes(f) && !UNCOVERED.includes(f) && f !== "refRemote").sort(), []);
});

for (const file of COVERED) {
  test(`JSON Schema suite, ${file}: every invalid instance is outside the grammar`, () => {
    let converted = 0;
    let acceptedValid = 0;
    let validCount = 0;
    for (const g of load(file)) {
      let grammar;
      try {
        grammar = parseGbnf(schemaToGbnf(g.schema));
      } catch (e) {
        if (!(e instanceof SchemaUnsupported)) throw e;
        // only a keyword outside the covered set, or a remote reference, may be refused
        assert.ok(
          UNCOVERED.includes(e.keyword) || (e.keyword === "$ref" && /local references/.test(e.message)) || e.keyword === "oneOf",
          `${file} / ${g.description}: refused for ${e.keyword}: ${e.message}`,
        );
        continue;
      }
      converted++;
      for (const t of g.tests) {
        const text = JSON.stringify(t.data);
        if (!t.valid) assert.equal(matches(grammar, text), false, `${file} / ${g.description} / ${t.description}: ${text} is admitted`);
        else {
          validCount++;
          if (matches(grammar, text)) acceptedValid++;
        }
      }
    }
    if (NONE_CONVERTIBLE[file]) assert.equal(converted, 0, `${file}: ${NONE_CONVERTIBLE[file]}`);
    else assert.ok(converted > 0, `${file}: no schema converted`);
    // the grammar is stricter than the schema in places (property order, extra properties), yet it
    // still admits most of the suite's valid instances
    assert.ok(acceptedValid > 0 || validCount === 0, `${file}: none of ${validCount} valid instances admitted`);
  });
}

for (const file of UNCOVERED) {
  test(`JSON Schema suite, ${file}: refused with an error naming the keyword`, () => {
    for (const g of load(file)) {
      assert.throws(() => schemaToGbnf(g.schema), (e: unknown) => e instanceof SchemaUnsupported && UNCOVERED.includes(e.keyword) && e.message.includes(`"${e.keyword}"`), `${file} / ${g.description}`);
    }
  });
}

test("optional formats (draft 4): invalid dates, emails, IPv4s, URIs and host names are outside the grammar", () => {
  const groups = JSON.parse(readFileSync(join(suiteDir, "optional", "format.json"), "utf8")) as Group[];
  let checked = 0;
  for (const g of groups) {
    const fmt = (g.schema as { format: string }).format;
    if (!["date-time", "email", "ipv4", "uri", "hostname"].includes(fmt)) continue;
    const grammar = parseGbnf(schemaToGbnf({ type: "string", format: fmt }));
    for (const t of g.tests) {
      if (typeof t.data !== "string") continue;
      const text = JSON.stringify(t.data);
      if (!t.valid) assert.equal(matches(grammar, text), false, `${fmt}: ${text} is admitted`);
      checked++;
    }
  }
  assert.ok(checked >= 10, `${checked} format cases`);
});
