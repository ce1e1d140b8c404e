/**
 * Golden prompts for the classic chat formats (fixtures/prompts/<format>/template.gotmpl, written as
 * Ollama ships them), each rendered as /api/chat would for the scenarios of fixtures/prompts/scenarios.json.
 * `MF_UPDATE_GOLDENS=1 node test/run.mjs prompt` rewrites the .txt files (review the diff!).
 */
import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { renderChatPrompt, type ChatMessage, type Tool } from "../../../runtime/prompt/index.js";

const DIR = fileURLToPath(new URL("../../../fixtures/prompts/", import.meta.url));
const spec = JSON.parse(readFileSync(join(DIR, "scenarios.json"), "utf8")) as {
  scenarios: Record<string, { system?: string; messages: ChatMessage[] }>;
  tools: Tool[];
  tool_call: { messages: ChatMessage[] };
};
const FORMATS = readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
const TOOL_FORMATS = new Set(["llama3.1-tools", "mistral"]);
const update = process.env.MF_UPDATE_GOLDENS === "1";

test("every classic format is present", () => {
  for (const f of ["llama2", "llama3", "mistral", "chatml", "gemma", "phi3", "vicuna", "alpaca", "zephyr", "llama3.1-tools"]) {
    assert.ok(FORMATS.includes(f), f);
  }
});

function check(format: string, scenario: string, rendered: { prompt: string; prefill: boolean }, lastRole: string) {
  const file = join(DIR, format, `${scenario}.txt`);
  if (update) writeFileSync(file, rendered.prompt);
  assert.ok(existsSync(file), `missing golden ${file}`);
  assert.equal(rendered.prompt, readFileSync(file, "utf8"));
  assert.equal(rendered.prefill, lastRole === "assistant");
}

for (const format of FORMATS) {
  const template = readFileSync(join(DIR, format, "template.gotmpl"), "utf8");
  const tools = format === "llama3.1-tools" ? spec.tools : undefined;
  for (const [name, s] of Object.entries(spec.scenarios)) {
    test(`${format}: ${name}`, () => {
      const r = renderChatPrompt({ template, system: s.system ?? null }, { messages: s.messages, tools });
      check(format, name, r, s.messages[s.messages.length - 1]!.role);
    });
  }
  if (TOOL_FORMATS.has(format)) {
    test(`${format}: tool call and result`, () => {
      const r = renderChatPrompt({ template }, { messages: spec.tool_call.messages, tools: spec.tools });
      check(format, "tool-call", r, "tool");
    });
  }
}
