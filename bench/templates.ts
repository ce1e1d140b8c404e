/**
 * templates and parser (sanity figures, no peer): how long rendering a 50-message chat takes through real
 * templates (the parse cached, as the runtime does), a cold template parse, and how long parsing a 1 MB
 * Modelfile takes (many PARAMETER and MESSAGE lines, a big TEMPLATE and SYSTEM).
 *
 *   npm run bench -- templates [--reps 2000]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import { parseModelfile } from "../grammar/modelfile/index.js";
import { parseTemplate } from "../grammar/template/index.js";
import { TemplateCache, renderChatPrompt, type ChatMessage, type Tool } from "../runtime/prompt/index.js";
import { fmtStat, report, stat, table } from "./lib.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "templates"),
  options: { reps: { type: "string", default: "2000" } },
});
const reps = Number(values.reps);

const DIR = new URL("../fixtures/prompts/", import.meta.url);
const FORMATS = ["chatml", "llama3", "llama3.1-tools", "mistral", "gemma", "alpaca"];
const { tools } = JSON.parse(readFileSync(new URL("scenarios.json", DIR), "utf8")) as { tools: Tool[] };

const MESSAGES = 50;
const messages: ChatMessage[] = [{ role: "system", content: "You are a helpful assistant." }];
for (let i = 1; i < MESSAGES; i++) {
  messages.push({ role: i % 2 ? "user" : "assistant", content: `Message ${i}: ${"lorem ipsum dolor sit amet ".repeat(8)}` });
}

const us = (ms: number[]) => stat(ms.map((x) => x * 1000));
const cache = new TemplateCache();
const rows: string[][] = [];
for (const f of FORMATS) {
  const template = readFileSync(new URL(`${f}/template.gotmpl`, DIR), "utf8");
  const image = { template, templateDigest: `sha256:${f}` };
  const req = { messages, tools: f === "llama3.1-tools" ? tools : undefined };
  for (let i = 0; i < Math.min(500, reps); i++) renderChatPrompt(image, req, { cache }); // warm-up
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    renderChatPrompt(image, req, { cache });
    times.push(performance.now() - t0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const parses: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    parseTemplate(template);
    parses.push(performance.now() - t0);
  }
  rows.push([f, fmtStat(us(times)), (sorted[Math.floor(sorted.length * 0.99)]! * 1000).toFixed(1), fmtStat(us(parses))]);
}

// a 1 MB Modelfile
const parts = ["FROM llama3.2", `TEMPLATE """${"{{ if .System }}<|system|>{{ .System }}{{ end }}{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}{{ end }}\n".repeat(200)}"""`, `SYSTEM """${"You are a helpful assistant. ".repeat(2000)}"""`];
for (let i = 0; parts.join("\n").length < 1_000_000; i++) {
  parts.push(i % 3 === 0 ? `PARAMETER stop "<|stop${i}|>"` : i % 3 === 1 ? `MESSAGE user "question ${i}: ${"why is the sky blue? ".repeat(4)}"` : `MESSAGE assistant """answer ${i}: ${"because of Rayleigh scattering. ".repeat(4)}"""`);
}
const modelfile = parts.join("\n") + "\n";
const lines = modelfile.split("\n").length;
const check = parseModelfile(modelfile);
if (check.diagnostics.some((d) => d.severity === "error")) throw new Error(`the 1 MB Modelfile does not parse: ${check.diagnostics[0]!.message}`);
parseModelfile(modelfile); // warm-up
const parseRuns: number[] = [];
for (let i = 0; i < 10; i++) {
  const t0 = performance.now();
  parseModelfile(modelfile);
  parseRuns.push(performance.now() - t0);
}
const p = stat(parseRuns);

report(
  "templates",
  [
    "## templates and parser (sanity figures, no peer)",
    "",
    `Render of a ${MESSAGES}-message chat (system + alternating user/assistant, ~220 characters each; tools for llama3.1-tools), parse cached as the runtime does, ${reps} renders per template; cold parse of the template, 200 runs. Medians (min–max).`,
    "",
    table(["template", "render µs", "render p99 µs", "cold template parse µs"], rows),
    "",
    table(["input", "parse ms", "throughput", "commands"], [[`Modelfile of ${(modelfile.length / 1e6).toFixed(2)} MB, ${lines} lines`, fmtStat(p, 1), `${(modelfile.length / 1e6 / (p.median / 1000)).toFixed(1)} MB/s`, String(check.ast.commands.length)]]),
    "",
    `Command: \`npm run bench -- templates --reps ${reps}\``,
  ].join("\n"),
);
