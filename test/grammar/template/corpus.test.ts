/**
 * The differential corpus (fixtures/templates/corpus.json): template/data cases whose expected output is
 * what Go's text/template gives for the same template on the same data (a Go `map[string]any` with
 * integral numbers as ints — see grammar/template/values.ts), errors with mf's 1-based line:column.
 */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { isTemplateError, parseTemplate } from "../../../grammar/template/index.js";

interface Case {
  group: string;
  name: string;
  template: string;
  data: unknown;
  expected?: string;
  error?: { phase: "parse" | "exec"; line: number; column: number; contains: string };
  note?: string;
}

const cases = JSON.parse(readFileSync(new URL("../../../fixtures/templates/corpus.json", import.meta.url), "utf8")) as Case[];

test("the corpus has at least 150 cases, errors included", () => {
  assert.ok(cases.length >= 150, `${cases.length} cases`);
  assert.ok(cases.filter((c) => c.error).length >= 40);
  assert.equal(new Set(cases.map((c) => `${c.group}/${c.name}`)).size, cases.length, "names are unique");
});

for (const c of cases) {
  test(`${c.group}: ${c.name}`, () => {
    if (c.error) {
      let thrown: unknown;
      try {
        parseTemplate(c.template).execute(c.data);
      } catch (e) {
        thrown = e;
      }
      assert.ok(isTemplateError(thrown), `expected a template error, got ${String(thrown)}`);
      assert.equal(thrown.phase, c.error.phase, thrown.message);
      assert.deepEqual([thrown.line, thrown.column], [c.error.line, c.error.column], thrown.message);
      assert.ok(thrown.reason.includes(c.error.contains), `${thrown.reason} lacks ${c.error.contains}`);
      assert.equal(thrown.code, "TEMPLATE_INVALID");
    } else {
      assert.equal(parseTemplate(c.template).execute(c.data), c.expected);
    }
  });
}
