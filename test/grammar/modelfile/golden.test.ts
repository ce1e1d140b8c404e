// Golden Modelfile cases: every folder of fixtures/modelfiles is decoded, parsed and compared with its
// expected.json (AST without positions, command positions, diagnostics, typed parameters). Cases
// without errors must also survive a format → parse round trip.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  canonicalOrder,
  decodeModelfile,
  formatModelfile,
  hasErrors,
  parseModelfile,
  stripLoc,
  typeParameters,
} from "../../../grammar/modelfile/index.js";

const root = "fixtures/modelfiles";
const cases = readdirSync(root).filter((n) => statSync(join(root, n)).isDirectory()).sort();
const update = process.env["MF_UPDATE_GOLDEN"] === "1";

test("there are golden cases", () => {
  assert.ok(cases.length >= 20, `only ${cases.length} cases`);
});

for (const name of cases) {
  test(`golden: ${name}`, () => {
    const text = decodeModelfile(readFileSync(join(root, name, "Modelfile")));
    const { ast, diagnostics } = parseModelfile(text);
    const actual = {
      ast: stripLoc(ast),
      locs: ast.commands.map((c) => `${c.loc?.line}:${c.loc?.column}`),
      diagnostics,
      params: typeParameters(ast.commands).params,
    };
    const file = join(root, name, "expected.json");
    if (update) writeFileSync(file, JSON.stringify(actual, null, 2) + "\n");
    const expected = JSON.parse(readFileSync(file, "utf8")) as unknown;
    assert.deepEqual(JSON.parse(JSON.stringify(actual)), expected);
    if (!hasErrors(diagnostics)) {
      const again = parseModelfile(formatModelfile(ast));
      assert.equal(hasErrors(again.diagnostics), false, JSON.stringify(again.diagnostics));
      assert.deepEqual(stripLoc(again.ast), stripLoc(canonicalOrder(ast)));
    }
  });
}
