/**
 * The two stream parsers of a chat turn, fed the answer in every possible split: thinking separated by
 * the tags the template names, and tool calls sent as soon as each is complete.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ThinkingSplitter, inferThinkTags } from "../../runtime/thinking.js";
import { ToolCallStream } from "../../runtime/toolstream.js";

/** Feeds `text` in pieces of `n` characters and collects the outputs. */
function splitAll(text: string, n: number, startsInside = false) {
  const s = new ThinkingSplitter({ open: "<think>", close: "</think>" }, startsInside);
  let thinking = "";
  let content = "";
  for (let i = 0; i < text.length; i += n) {
    const r = s.push(text.slice(i, i + n));
    thinking += r.thinking;
    content += r.content;
  }
  const r = s.flush();
  return { thinking: thinking + r.thinking, content: content + r.content };
}

test("thinking tags are read from the template around .Thinking", () => {
  assert.deepEqual(inferThinkTags("{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}"), { open: "<think>", close: "</think>" });
  assert.deepEqual(inferThinkTags("<|assistant|>{{- if .Thinking }}<thinking>\n{{ .Thinking }}\n</thinking>{{ end }}"), { open: "<thinking>", close: "</thinking>" });
  assert.equal(inferThinkTags("{{ .Prompt }}"), undefined);
  assert.equal(inferThinkTags("{{ .Thinking }}"), undefined, "no tags: nothing to separate by");
});

test("thinking and content are separated whatever the chunking", () => {
  const answer = "\n<think>first, the sum\nis 4</think>\n\nThe answer is 4.";
  for (const n of [1, 2, 3, 5, 7, 100]) {
    assert.deepEqual(splitAll(answer, n), { thinking: "first, the sum\nis 4", content: "The answer is 4." }, `pieces of ${n}`);
  }
  assert.deepEqual(splitAll("no tags at all <think>", 3), { thinking: "", content: "no tags at all <think>" });
  assert.deepEqual(splitAll("still thinking when cut", 4, true), { thinking: "still thinking when cut", content: "" });
  assert.deepEqual(splitAll("<thi", 1), { thinking: "", content: "<thi" }, "a partial tag at the end is content");
});

test("tool calls are emitted one by one as soon as each is complete, with ids", () => {
  const text = '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>{"name": "b", "arguments": {"y": "}"}}</tool_call>';
  for (const n of [1, 4, 9, 1000]) {
    const s = new ToolCallStream(["a", "b"]);
    const seen: { at: number; name: string; id?: string }[] = [];
    let content = "";
    for (let i = 0; i < text.length; i += n) {
      const r = s.push(text.slice(i, i + n));
      content += r.content;
      for (const c of r.calls) seen.push({ at: Math.min(i + n, text.length), name: c.function.name, id: c.id });
    }
    const f = s.flush();
    content += f.content;
    assert.equal(f.calls.length, 0);
    assert.deepEqual(seen.map((c) => c.name), ["a", "b"]);
    // the first call went out before the second began
    assert.ok(seen[0]!.at <= text.indexOf('{"name": "b"') + n, `pieces of ${n}: first call at ${seen[0]!.at}`);
    assert.ok(seen.every((c) => /^call_/.test(c.id ?? "")));
    assert.notEqual(seen[0]!.id, seen[1]!.id);
    assert.equal(content, "");
  }
});

test("a bare call, a list, [TOOL_CALLS] and text around calls", () => {
  const run = (text: string, names = ["get"]) => {
    const s = new ToolCallStream(names);
    const a = s.push(text);
    const b = s.flush();
    return { content: a.content + b.content, calls: [...a.calls, ...b.calls].map((c) => [c.function.name, c.function.arguments]) };
  };
  assert.deepEqual(run('{"name":"get","arguments":{"k":1}}'), { content: "", calls: [["get", { k: 1 }]] });
  assert.deepEqual(run('[{"name":"get","arguments":{}}, {"function":{"name":"get","arguments":"{\\"q\\":2}"}}]'), { content: "", calls: [["get", {}], ["get", { q: 2 }]] });
  assert.deepEqual(run('[TOOL_CALLS] [{"name":"get","parameters":{"a":true}}]'), { content: "", calls: [["get", { a: true }]] });
  assert.deepEqual(run('Let me look.<tool_call>{"name":"get","arguments":{}}</tool_call>'), { content: "Let me look.", calls: [["get", {}]] });
  // whitespace after the last call (a grammar's trailing space, a newline after </tool_call>) is not content
  assert.deepEqual(run('{"name":"get","arguments":{}} '), { content: "", calls: [["get", {}]] });
  assert.deepEqual(run('<tool_call>{"name":"get","arguments":{}}</tool_call>\n'), { content: "", calls: [["get", {}]] });
  assert.deepEqual(run('{"name":"get","arguments":{}}\nDone.'), { content: "\nDone.", calls: [["get", {}]] });
  // not a call: the text is content, nothing lost
  assert.deepEqual(run('{"name":"other","arguments":{}}'), { content: '{"name":"other","arguments":{}}', calls: [] });
  assert.deepEqual(run("[1, 2, 3]"), { content: "[1, 2, 3]", calls: [] });
  assert.deepEqual(run("plain words"), { content: "plain words", calls: [] });
  assert.deepEqual(run('{"name":"get","arguments":{"unfinished":'), { content: '{"name":"get","arguments":{"unfinished":', calls: [] });
});
