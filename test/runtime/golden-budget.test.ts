/**
 * The template budget leaves room for real prompts: through a real server whose budget allows a tenth of
 * the default steps and output, every golden template of the project (fixtures/prompts/<format>/
 * template.gotmpl) renders a chat that fills a 128K-token context, tools included where the template takes
 * them. (Its time limit stays the default: a time is no test's to assert; it backs up the step count.)
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { DEFAULT_LIMITS } from "../../grammar/template/index.js";
import type { Tool } from "../../runtime/prompt/index.js";
import { type Harness, post, startHarness } from "./harness.js";

const DIR = fileURLToPath(new URL("../../fixtures/prompts/", import.meta.url));
const FORMATS = readdirSync(DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
const { tools } = JSON.parse(readFileSync(DIR + "scenarios.json", "utf8")) as { tools: Tool[] };

/** ~4 characters a token: 128K tokens of chat, in turns of ~1000 characters, with tool calls and results */
function fullContextChat(withTools: boolean): unknown[] {
  const messages: unknown[] = [{ role: "system", content: "You are a helpful assistant." }];
  let chars = 0;
  for (let i = 0; chars < 4 * 131_072; i++) {
    const content = `Turn ${i}: ${"the quick brown fox jumps over the lazy dog ".repeat(23)}`;
    chars += content.length;
    if (withTools && i % 10 === 9) {
      messages.push({ role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: `City ${i}` } } }] });
      messages.push({ role: "tool", content: `{"temperature": ${i % 40}}` });
    } else messages.push({ role: i % 2 ? "assistant" : "user", content });
  }
  messages.push({ role: "user", content: "And now?" });
  return messages;
}

let h: Harness;
before(async () => {
  h = await startHarness({ templateLimits: { steps: DEFAULT_LIMITS.steps / 10, outputChars: DEFAULT_LIMITS.outputChars / 10 } });
});
after(async () => h?.close());

test("every golden template renders a full-context chat within a tenth of the budget's steps and output", async () => {
  assert.ok(FORMATS.length >= 10, FORMATS.join(" "));
  for (const f of FORMATS) {
    const template = readFileSync(`${DIR}${f}/template.gotmpl`, "utf8");
    const withTools = /\.Tools\b/.test(template);
    const messages = fullContextChat(withTools);
    const r = await post(h.base, "/api/chat", { model: "chat", template, messages, tools: withTools ? tools : undefined, _debug_render_only: true });
    assert.equal(r.status, 200, `${f}: ${r.text.slice(0, 300)}`);
    const rendered: string = r.json._debug_info.rendered_template;
    assert.ok(rendered.length > 4 * 131_072 * 0.9, `${f}: ${rendered.length} characters rendered`);
    assert.ok(rendered.includes("And now?"), f);
  }
});
