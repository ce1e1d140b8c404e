// Fuzz: thousands of seeded random and mutated inputs. parseModelfile never throws; every input yields
// either an AST without errors or at least one error; every diagnostic lies inside the input; the
// grammar never falls back to Chevrotain's recovery; an error-free AST survives format → parse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  canonicalOrder,
  decodeModelfile,
  formatDiagnostic,
  formatModelfile,
  parseModelfile,
  stripLoc,
} from "../../../grammar/modelfile/index.js";
import { LineMap } from "../../../grammar/modelfile/text.js";

/** mulberry32: a small seeded PRNG so that a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FRAGMENTS = [
  "FROM", "from", "ADAPTER", "TEMPLATE", "SYSTEM", "sYsTeM", "PARAMETER", "MESSAGE", "LICENSE", "REQUIRES",
  "DRAFT", "RENDERER", "PARSER", "FRM", "PARAMETR", "user", "bot", "assistant", "stop", "temperature",
  "num_ctx", "temprature", "0.5", "1.0", "true", "1e-3", "0.14.0", '"', '"""', '""', "#", " # ", " ", "  ",
  "\t", "\n", "\n", "\r\n", "\r", "\ufeff", "\u0000", "é", "😀", "\ud800", "\\", "\\n", "llama3", "{{ .Prompt }}",
];

function randomInput(next: () => number): string {
  const n = Math.floor(next() * 40);
  let s = "";
  for (let i = 0; i < n; i++) {
    if (next() < 0.1) s += String.fromCharCode(Math.floor(next() * 0x3000));
    else s += FRAGMENTS[Math.floor(next() * FRAGMENTS.length)];
  }
  return s;
}

function mutate(text: string, next: () => number): string {
  let s = text;
  const rounds = 1 + Math.floor(next() * 4);
  for (let r = 0; r < rounds; r++) {
    const at = Math.floor(next() * (s.length + 1));
    const len = Math.floor(next() * 8);
    switch (Math.floor(next() * 4)) {
      case 0:
        s = s.slice(0, at) + s.slice(at + len);
        break;
      case 1:
        s = s.slice(0, at) + FRAGMENTS[Math.floor(next() * FRAGMENTS.length)] + s.slice(at);
        break;
      case 2:
        s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
        break;
      default: {
        const lines = s.split("\n");
        const i = Math.floor(next() * lines.length);
        const j = Math.floor(next() * lines.length);
        [lines[i], lines[j]] = [lines[j]!, lines[i]!];
        s = lines.join("\n");
      }
    }
  }
  return s;
}

function check(text: string): void {
  const { ast, diagnostics } = parseModelfile(text);
  const map = new LineMap(text);
  for (const d of diagnostics) {
    assert.ok(d.line >= 1 && d.line <= map.lineCount, `line ${d.line} of ${JSON.stringify(text)}`);
    const lineLength = [...text.slice(map.lineStart(d.line), map.lineEnd(d.line))].length;
    assert.ok(d.column >= 1 && d.column <= lineLength + 1, `column ${d.column} of ${JSON.stringify(text)}`);
    assert.ok(d.length >= 1 && d.message.length > 0);
    assert.doesNotMatch(d.message, /^(internal error|syntax error)/, JSON.stringify(text));
    assert.equal(typeof formatDiagnostic(d, text), "string");
  }
  const failed = diagnostics.some((d) => d.severity === "error");
  if (!failed) {
    assert.ok(ast.commands.some((c) => c.kind === "from"));
    const again = parseModelfile(formatModelfile(ast));
    assert.deepEqual(stripLoc(again.ast), stripLoc(canonicalOrder(ast)), JSON.stringify(text));
  }
}

const root = "fixtures/modelfiles";
const seeds = readdirSync(root)
  .filter((n) => !n.includes("."))
  .map((n) => decodeModelfile(readFileSync(join(root, n, "Modelfile"))));

test("fuzz: random inputs", () => {
  const next = rng(20240601);
  for (let i = 0; i < 2500; i++) check(randomInput(next));
});

test("fuzz: mutated golden Modelfiles", () => {
  const next = rng(7);
  let clean = 0;
  for (let i = 0; i < 2500; i++) {
    const text = mutate(seeds[i % seeds.length]!, next);
    check(text);
    if (!parseModelfile(text).diagnostics.some((d) => d.severity === "error")) clean++;
  }
  // the mutations must leave a good share of valid files, or the round-trip branch would be untested
  assert.ok(clean > 200, `only ${clean} error-free mutants`);
});
