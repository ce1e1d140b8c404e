/**
 * How long prompt rendering takes: a 20-message chat through real templates (parse cached, as the runtime
 * does), plus a cold parse. Run: `node --import tsx bench/templates.ts`. The target is well under a
 * millisecond per render; this prints the mean and p99 per template.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parseTemplate } from "../grammar/template/index.js";
import { TemplateCache, renderChatPrompt, type ChatMessage, type Tool } from "../runtime/prompt/index.js";

const DIR = new URL("../fixtures/prompts/", import.meta.url);
const FORMATS = ["chatml", "llama3", "llama3.1-tools", "mistral", "gemma", "alpaca"];
const { tools } = JSON.parse(readFileSync(new URL("scenarios.json", DIR), "utf8")) as { tools: Tool[] };

const messages: ChatMessage[] = [{ role: "system", content: "You are a helpful assistant." }];
for (let i = 0; i < 19; i++) {
  messages.push({ role: i % 2 ? "assistant" : "user", content: `Message ${i}: ${"lorem ipsum dolor sit amet ".repeat(8)}` });
}

const cache = new TemplateCache();
const rows: string[][] = [["template", "mean µs/render", "p99 µs", "cold parse µs"]];
for (const f of FORMATS) {
  const template = readFileSync(new URL(`${f}/template.gotmpl`, DIR), "utf8");
  const image = { template, templateDigest: `sha256:${f}` };
  const req = { messages, tools: f === "llama3.1-tools" ? tools : undefined };
  for (let i = 0; i < 500; i++) renderChatPrompt(image, req, { cache }); // warm-up
  const times: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const t0 = performance.now();
    renderChatPrompt(image, req, { cache });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const p0 = performance.now();
  for (let i = 0; i < 200; i++) parseTemplate(template);
  const parse = (performance.now() - p0) / 200;
  rows.push([f, (mean * 1000).toFixed(1), (times[Math.floor(times.length * 0.99)]! * 1000).toFixed(1), (parse * 1000).toFixed(1)]);
}
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
for (const r of rows) console.log(r.map((x, c) => x.padEnd(widths[c]!)).join("  "));
