/** Ollama's prompt rules (compat.md §6) over the engine: modes, collation, request building, cache, truncation. */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { isTemplateError } from "../../../grammar/template/index.js";
import {
  TemplateCache,
  chatMessages,
  collate,
  prepareTemplate,
  renderChatPrompt,
  renderGeneratePrompt,
  type ChatMessage,
} from "../../../runtime/prompt/index.js";

const u = (content: string): ChatMessage => ({ role: "user", content });
const a = (content: string): ChatMessage => ({ role: "assistant", content });
const s = (content: string): ChatMessage => ({ role: "system", content });

test("append rule: {{ .Response }} is added unless messages or response is mentioned (any case)", () => {
  assert.equal(prepareTemplate("{{ .Prompt }}").template.execute({ Prompt: "p", Response: "R" }), "pR");
  assert.equal(prepareTemplate("{{ .Prompt }}{{ .response }}").template.execute({ Prompt: "p", Response: "R", response: "" }), "p");
  assert.equal(prepareTemplate("{{ range $.messages }}{{ end }}x").template.execute({}), "x");
});

test("mode detection: .Messages or $.Messages → messages mode; otherwise legacy", () => {
  assert.equal(prepareTemplate("{{ range .Messages }}{{ end }}").messagesMode, true);
  assert.equal(prepareTemplate("{{ len $.Messages }}").messagesMode, true);
  assert.equal(prepareTemplate("{{ .Prompt }}").messagesMode, false);
});

test("collate merges consecutive same-role messages with a blank line, keeps the first's tool calls, never merges tools", () => {
  const call = { function: { name: "f", arguments: {} } };
  const { system, messages } = collate([
    s("s1"),
    s("s2"),
    u("a"),
    u("b"),
    { role: "assistant", content: "x", tool_calls: [call] },
    a("y"),
    { role: "tool", content: "t1" },
    { role: "tool", content: "t2" },
  ]);
  assert.equal(system, "s1\n\ns2");
  assert.deepEqual(messages.map((m) => [m.role, m.content]), [["system", "s1\n\ns2"], ["user", "a\n\nb"], ["assistant", "x\n\ny"], ["tool", "t1"], ["tool", "t2"]]);
  assert.deepEqual(messages[2]!.tool_calls, [call]);
});

test("messages mode sees .System joined, system messages still in .Messages, .Tools, empty .Response", () => {
  const t = "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}|{{ len .Tools }}|[{{ .Response }}]";
  const r = renderChatPrompt({ template: t }, { messages: [s("A"), u("q"), s("B")] });
  assert.equal(r.prompt, "A\n\nB|system:A;user:q;system:B;|0|[]");
});

test("think values reach the template", () => {
  const t = "{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ range .Messages }}{{ end }}";
  assert.equal(renderChatPrompt({ template: t }, { messages: [u("x")] }).prompt, "false  false");
  assert.equal(renderChatPrompt({ template: t }, { messages: [u("x")], think: "high" }).prompt, "true high true");
  assert.equal(renderChatPrompt({ template: t }, { messages: [u("x")], think: true }).prompt, "true  true");
});

test("legacy mode: one execution per completed turn, the last cut after {{ .Response }} (prefill)", () => {
  const t = "{{ if .System }}<s>{{ .System }}</s>{{ end }}[U]{{ .Prompt }}[A]{{ .Response }}[END]";
  const r = renderChatPrompt({ template: t }, { messages: [s("sys"), u("q1"), a("r1"), u("q2"), a("pre")] });
  assert.equal(r.prompt, "<s>sys</s>[U]q1[A]r1[END][U]q2[A]pre");
  assert.equal(r.prefill, true);
  const open = renderChatPrompt({ template: t }, { messages: [u("q1")] });
  assert.equal(open.prompt, "[U]q1[A]");
  assert.equal(open.prefill, false);
});

test("legacy mode does not copy Ollama's faults: functions and defines survive the cut, if/else around .Response is fine", () => {
  const t = "{{ define \"h\" }}<{{ . }}>{{ end }}{{ template \"h\" .Prompt }}{{ if .Prompt }}{{ json .Prompt }}{{ .Response }}!{{ else }}none{{ end }}";
  const r = renderChatPrompt({ template: t }, { messages: [u("q"), a("a1"), u("q2")] });
  assert.equal(r.prompt, "<q>\"q\"a1!<q2>\"q2\"");
});

test("suffix mode on /api/generate: .Prompt and .Suffix", () => {
  const t = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>";
  assert.equal(renderGeneratePrompt({ template: t }, { prompt: "def f(", suffix: "return x" }).prompt, "<PRE> def f( <SUF>return x <MID>");
});

test("/api/generate: request system over the image's, image MESSAGEs, then the prompt", () => {
  const t = "{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}";
  const image = { template: t, system: "IMG", messages: [u("m1"), a("m2")] };
  assert.equal(renderGeneratePrompt(image, { prompt: "p" }).prompt, "system=IMG;user=m1;assistant=m2;user=p;");
  assert.equal(renderGeneratePrompt(image, { prompt: "p", system: "REQ" }).prompt, "system=REQ;user=m1;assistant=m2;user=p;");
  assert.equal(renderGeneratePrompt(image, { prompt: "p", hasContext: true }).prompt, "system=IMG;user=p;");
  // A request template runs on [system] + [prompt] only.
  assert.equal(renderGeneratePrompt(image, { prompt: "p", template: "{{ .System }}/{{ .Prompt }}" }).prompt, "IMG/p");
  assert.equal(renderGeneratePrompt(image, { prompt: "p", raw: true }).prompt, "p");
});

test("/api/chat: image MESSAGEs first; image SYSTEM only when the first request message is not a system one", () => {
  const image = { system: "IMG", messages: [u("m1"), a("m2")] };
  assert.deepEqual(chatMessages(image, [u("q")]).map((m) => m.content), ["IMG", "m1", "m2", "q"]);
  assert.deepEqual(chatMessages(image, [s("REQ"), u("q")]).map((m) => m.content), ["m1", "m2", "REQ", "q"]);
});

test("no TEMPLATE: the prompt as is", () => {
  assert.equal(renderGeneratePrompt({}, { prompt: "just this" }).prompt, "just this");
});

test("images become [img-N] tags, replacing [img] where written", () => {
  const t = "{{ range .Messages }}{{ .Content }}|{{ end }}";
  const r = renderChatPrompt({ template: t }, { messages: [{ role: "user", content: "see", images: ["A", "B"] }, { role: "user", content: "x [img] y", images: ["C"] }] });
  assert.equal(r.prompt, "[img-0][img-1]see\n\nx [img-2] y|");
  assert.deepEqual(r.images, ["A", "B", "C"]);
});

test("truncation drops the oldest messages, keeps system messages and the last one", () => {
  const t = "{{ range .Messages }}{{ .Content }} {{ end }}";
  const msgs = [s("sys"), u("one two three"), a("four five"), u("six")];
  const fit = { numCtx: 3, countTokens: (x: string) => x.trim().split(/\s+/).length };
  assert.equal(renderChatPrompt({ template: t }, { messages: msgs }, { fit }).prompt, "sys six ");
  assert.equal(renderChatPrompt({ template: t }, { messages: msgs }, { fit: { ...fit, numCtx: 4 } }).prompt, "sys four five six ");
});

test("template errors are positioned TemplateErrors", () => {
  assert.throws(() => renderChatPrompt({ template: "x\n{{ .Messages.Nope }}" }, { messages: [u("q")] }), (e) => isTemplateError(e) && e.line === 2 && e.column === 4);
  assert.throws(() => renderChatPrompt({ template: "{{ if }}" }, { messages: [] }), (e) => isTemplateError(e) && e.phase === "parse");
});

test("the cache parses a template once per digest and evicts the least recently used", () => {
  const cache = new TemplateCache(2);
  const a1 = cache.get("{{ .A }}", "sha256:a");
  assert.equal(cache.get("ignored: same digest", "sha256:a"), a1);
  cache.get("{{ .B }}", "sha256:b");
  cache.get("{{ .A }}", "sha256:a");
  cache.get("{{ .C }}", "sha256:c");
  assert.equal(cache.size, 2);
  assert.equal(cache.get("{{ .A }}", "sha256:a"), a1, "recently used entry kept");
  const r1 = renderChatPrompt({ template: "{{ .Prompt }}", templateDigest: "sha256:t" }, { messages: [u("q")] }, { cache });
  assert.equal(r1.prompt, "q");
});

test("tool prompts as Ollama renders them: nested parameter objects and anyOf survive into .Tools, roles lower-cased, json of .Messages and .ToolCalls with Ollama's field names", () => {
  const tmpl = "{{ range .Tools }}{{ json . }}{{ end }}|{{ json .Messages }}|{{ range .Messages }}{{ .Role }}:{{ json .ToolCalls }};{{ end }}";
  const tools = [
    {
      type: "function",
      function: {
        name: "book",
        parameters: {
          type: "object",
          required: ["where"],
          properties: {
            where: { type: "object", description: "the place", properties: { city: { type: "string" }, zip: { anyOf: [{ type: "string" }, { type: "null" }] } } },
          },
        },
      },
    },
  ] as never;
  const messages = [
    { role: "User", content: "book it" },
    { role: "ASSISTANT", content: "", tool_calls: [{ id: "call_1", function: { name: "book", arguments: { where: { city: "Oslo" } } } }] },
    { role: "tool", content: "done", tool_call_id: "call_1", tool_name: "book" },
  ];
  const out = renderChatPrompt({ template: tmpl }, { messages, tools }, { cache: new TemplateCache() }).prompt;
  const [toolJson, messagesJson, perMessage] = out.split("|");
  assert.deepEqual(JSON.parse(toolJson!).function.parameters.properties.where, {
    type: "object",
    description: "the place",
    properties: { city: { type: "string" }, zip: { anyOf: [{ type: "string" }, { type: "null" }] } },
  });
  assert.deepEqual(JSON.parse(messagesJson!), [
    { role: "user", content: "book it" },
    { role: "assistant", content: "", tool_calls: [{ id: "call_1", function: { name: "book", arguments: { where: { city: "Oslo" } } } }] },
    { role: "tool", content: "done", tool_name: "book", tool_call_id: "call_1" },
  ]);
  // a message without calls has none (Go's nil slice prints null), one with calls prints them
  assert.equal(perMessage, 'user:null;assistant:[{"id":"call_1","function":{"name":"book","arguments":{"where":{"city":"Oslo"}}}}];tool:null;');
});
