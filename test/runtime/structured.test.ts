/**
 * Structured output end to end: a corpus of schemas of the kinds apps send (zod objects, nullable
 * fields and unions, discriminated unions, formats, patterns, bounded numbers, tuples, $defs), each
 * through a real `mf serve` app on the random-weight tiny model with 20 seeds. Every answer must finish
 * by itself (done_reason "stop": an answer cut by length fails) and validate with ajv. A random model
 * writes whatever the grammar allows, so any looseness in the grammar shows up here as an invalid answer.
 * Schemas the converter cannot honour answer 400 naming the keyword, in Ollama's error shape.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { type Harness, post, startHarness } from "./harness.js";

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

let h: Harness;
before(async () => {
  h = await startHarness();
  // the chat model's context (512) is short for the longer answers: a copy with more room
  const ctx = join(h.dir, "ctx-structured");
  await mkdir(ctx, { recursive: true });
  await writeFile(join(ctx, "Modelfile"), `FROM ${h.gguf}\nPARAMETER num_ctx 2048\n`);
  await buildFromModelfile(join(ctx, "Modelfile"), { store: h.store, tags: [parseRef("long")], contextDir: ctx, homeDir: h.dir });
});
after(async () => h?.close());

const name = { type: "string", minLength: 1, maxLength: 16 };
const CORPUS: Record<string, object> = {
  "zod object with optional and nullable fields": {
    type: "object",
    properties: {
      name,
      age: { type: "integer", minimum: 0, maximum: 120 },
      nickname: { anyOf: [{ type: "string", maxLength: 8 }, { type: "null" }] },
      admin: { type: "boolean" },
      score: { type: "number", exclusiveMinimum: 0, maximum: 1 },
    },
    required: ["name", "age", "nickname"],
    additionalProperties: false,
  },
  "discriminated union (oneOf on a const)": {
    oneOf: [
      { type: "object", properties: { kind: { const: "circle" }, radius: { type: "number", minimum: 0, maximum: 100 } }, required: ["kind", "radius"], additionalProperties: false },
      { type: "object", properties: { kind: { const: "rect" }, w: { type: "integer", minimum: 1, maximum: 9 }, h: { type: "integer", minimum: 1, maximum: 9 } }, required: ["kind", "w", "h"], additionalProperties: false },
    ],
  },
  "formats: uuid, date, time, date-time": {
    type: "object",
    properties: { id: { type: "string", format: "uuid" }, day: { type: "string", format: "date" }, at: { type: "string", format: "time" }, when: { type: "string", format: "date-time" } },
    required: ["id", "day", "at", "when"],
    additionalProperties: false,
  },
  "formats: email, uri, hostname, ipv4": {
    type: "array",
    prefixItems: [{ type: "string", format: "email" }, { type: "string", format: "uri" }, { type: "string", format: "hostname" }, { type: "string", format: "ipv4" }],
    items: false,
  },
  "pattern, anchored and not": {
    type: "object",
    properties: { code: { type: "string", pattern: "^[A-Z]{3}-\\d{4}$" }, ref: { type: "string", pattern: "^(?:ab|cd)+x?$" }, tag: { enum: ["alpha", "beta", 7, null] } },
    required: ["code", "ref", "tag"],
    additionalProperties: false,
  },
  "bounded integers, no exponent": {
    type: "array",
    items: { type: "integer", minimum: -12, maximum: 207 },
    minItems: 2,
    maxItems: 5,
  },
  "tuple with a closed tail": { type: "array", prefixItems: [{ type: "string", maxLength: 5 }, { type: "integer" }, { type: "boolean" }], items: false },
  "$defs and allOf": {
    $defs: { point: { type: "object", properties: { x: { type: "integer", minimum: -9, maximum: 9 }, y: { type: "integer", minimum: -9, maximum: 9 } }, required: ["x", "y"], additionalProperties: false } },
    allOf: [{ type: "object", properties: { from: { $ref: "#/$defs/point" } }, required: ["from"] }, { properties: { to: { $ref: "#/$defs/point" } }, required: ["to"] }],
  },
  "list of small records": {
    type: "array",
    maxItems: 3,
    items: { type: "object", properties: { n: name, done: { type: "boolean" } }, required: ["n", "done"], additionalProperties: false },
  },
};

describe("structured output on a random-weight model", { concurrency: false }, () => {
  const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  for (const [title, schema] of Object.entries(CORPUS)) {
    test(`${title}: 20 seeds, every answer finishes and validates`, async () => {
      const validate = ajv.compile(schema);
      const failures: string[] = [];
      // two at a time: the harness serves two slots, one engine thread each
      const seeds = Array.from({ length: 20 }, (_, i) => i + 1);
      const answers: { seed: number; status: number; text: string; json: any }[] = [];
      for (let i = 0; i < seeds.length; i += 2) {
        answers.push(...(await Promise.all(seeds.slice(i, i + 2).map(async (seed) => ({
          seed,
          ...(await post(h.base, "/api/generate", { model: "long", prompt: "answer", format: schema, stream: false, options: { seed, temperature: 1, top_k: 0, top_p: 1, num_predict: 1500 } })),
        })))));
      }
      for (const { seed, status, text, json: j } of answers) {
        assert.equal(status, 200, text);
        if (j.done_reason !== "stop") {
          failures.push(`seed ${seed}: cut by ${j.done_reason} after ${j.eval_count} tokens`);
          continue;
        }
        let v: unknown;
        try {
          v = JSON.parse(j.response);
        } catch {
          failures.push(`seed ${seed}: not JSON: ${j.response}`);
          continue;
        }
        if (!validate(v)) failures.push(`seed ${seed}: ${j.response} — ${ajv.errorsText(validate.errors)}`);
      }
      assert.deepEqual(failures, []);
    });
  }

  test("a schema mf cannot honour is a 400 naming the keyword, before any model is loaded", async () => {
    for (const [schema, kw] of [
      [{ type: "integer", multipleOf: 5 }, "multipleOf"],
      [{ type: "string", pattern: "^(?=x)" }, "pattern"],
      [{ oneOf: [{ type: "integer" }, { minimum: 2 }] }, "oneOf"],
      [{ type: "string", format: "ipv6" }, "format"],
    ] as [object, string][]) {
      const r = await post(h.base, "/api/generate", { model: "long", prompt: "x", format: schema, stream: false });
      assert.equal(r.status, 400, r.text);
      assert.equal(typeof r.json.error, "string");
      assert.match(r.json.error, new RegExp(`"${kw}"`));
    }
  });
});
