/** Tool calls read from a model's answer. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseToolCalls } from "../../runtime/toolcalls.js";

test("JSON calls, lists, tagged calls and string arguments become tool calls; text stays text", () => {
  const names = ["get_weather", "add"];
  assert.deepEqual(parseToolCalls('{"name": "get_weather", "arguments": {"city": "Paris"}}', names), [
    { function: { index: 0, name: "get_weather", arguments: { city: "Paris" } } },
  ]);
  assert.deepEqual(
    parseToolCalls('<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 1}"}\n</tool_call><tool_call>{"name":"get_weather","parameters":{}}</tool_call>', names),
    [
      { function: { index: 0, name: "add", arguments: { a: 1 } } },
      { function: { index: 1, name: "get_weather", arguments: {} } },
    ],
  );
  assert.deepEqual(parseToolCalls('[TOOL_CALLS] [{"function": {"name": "add", "arguments": {"a": 2}}}]', names), [
    { function: { index: 0, name: "add", arguments: { a: 2 } } },
  ]);
  assert.equal(parseToolCalls("The weather is fine.", names), undefined);
  assert.equal(parseToolCalls('{"name": "unknown_tool", "arguments": {}}', names), undefined);
  assert.equal(parseToolCalls('{"name": "add", "arguments": {}}', []), undefined);
});
