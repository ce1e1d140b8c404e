/**
 * Anthropic's Messages API driven by the official `@anthropic-ai/sdk` over HTTP on 127.0.0.1, against
 * the real engine: messages whole and streamed (the full event sequence), tool use forced and its
 * result sent back, thinking blocks, stop sequences, aborts and Anthropic-shaped errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type { Harness } from "./harness.js";
import { rawRequest, startCompatHarness, weatherParameters } from "./compat-harness.js";

let h: Harness;
let client: Anthropic;
before(async () => {
  h = await startCompatHarness();
  client = new Anthropic({ baseURL: h.base, apiKey: "sk-ant-ignored-by-mf", maxRetries: 0 });
});
after(async () => h?.close());

/** temperature 0 (greedy), which the SDK's types of this version no longer list but the API takes */
const greedy = { temperature: 0 } as {};

const weather = { name: "get_weather", description: "the weather of a city", input_schema: weatherParameters as Anthropic.Tool.InputSchema };

describe("@anthropic-ai/sdk client", { concurrency: false }, () => {
  test("a message: text block, stop reason, usage", async () => {
    const r = await client.messages.create({ model: "chat", max_tokens: 6, system: "be brief", messages: [{ role: "user", content: "hello" }], ...greedy });
    assert.equal(r.type, "message");
    assert.match(r.id, /^msg_/);
    assert.equal(r.role, "assistant");
    assert.equal(r.content.length, 1);
    assert.equal(r.content[0]!.type, "text");
    assert.equal(r.stop_reason, "max_tokens");
    assert.equal(r.usage.output_tokens, 6);
    assert.ok(r.usage.input_tokens > 5);
  });

  test("streamed: message_start, one text block with deltas, message_delta with the stop reason, message_stop", async () => {
    const body = { model: "chat", max_tokens: 6, messages: [{ role: "user" as const, content: "hello" }], ...greedy };
    const whole = await client.messages.create(body);
    const s = client.messages.stream(body);
    const types: string[] = [];
    for await (const ev of s) types.push(ev.type);
    const final = await s.finalMessage();
    assert.deepEqual(types.slice(0, 2), ["message_start", "content_block_start"]);
    assert.deepEqual(types.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
    assert.ok(types.slice(2, -3).length > 0 && types.slice(2, -3).every((t) => t === "content_block_delta"), types.join());
    assert.equal(final.stop_reason, "max_tokens");
    assert.deepEqual(final.content, whole.content);
  });

  test("tool use: a forced tool_choice gives a tool_use block; its tool_result goes back in the next turn", async () => {
    const r = await client.messages.create({ model: "tooly", max_tokens: 100, tools: [weather], tool_choice: { type: "tool", name: "get_weather" }, messages: [{ role: "user", content: "weather in Oslo?" }] });
    assert.equal(r.stop_reason, "tool_use");
    const use = r.content.find((b) => b.type === "tool_use") as Anthropic.ToolUseBlock;
    assert.ok(use, JSON.stringify(r.content));
    assert.match(use.id, /^toolu_/);
    assert.equal(use.name, "get_weather");
    assert.equal(typeof (use.input as { city: string }).city, "string");
    const s = client.messages.stream({ model: "tooly", max_tokens: 100, tools: [weather], tool_choice: { type: "any" }, messages: [{ role: "user", content: "weather?" }] });
    const final = await s.finalMessage();
    assert.equal(final.content.filter((b) => b.type === "tool_use").length, 1);
    const next = await client.messages.create({
      model: "tooly",
      max_tokens: 4,
      tools: [weather],
      messages: [
        { role: "user", content: "weather in Oslo?" },
        { role: "assistant", content: [use] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }] },
      ],
    });
    assert.equal(next.type, "message");
    // the result reached the prompt as a tool message after the call
    const dbg = await fetch(`${h.base}/api/chat`, {
      method: "POST",
      body: JSON.stringify({ model: "tooly", _debug_render_only: true, tools: [{ type: "function", function: { name: "get_weather", parameters: weatherParameters } }], messages: [{ role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: use.input } }] }, { role: "tool", content: "sunny" }] }),
    }).then((x) => x.json() as Promise<any>);
    assert.match(dbg._debug_info.rendered_template, /<\|im_start\|>tool\nsunny<\|im_end\|>/);
  });

  test("thinking: a thinking block before the text, streamed as thinking_delta; disabled gives none", async () => {
    const r = await client.messages.create({ model: "thinker", max_tokens: 6, thinking: { type: "enabled", budget_tokens: 1024 }, messages: [{ role: "user", content: "think" }], ...greedy });
    assert.equal(r.content[0]!.type, "thinking");
    assert.ok((r.content[0] as Anthropic.ThinkingBlock).thinking.length > 0);
    const s = client.messages.stream({ model: "thinker", max_tokens: 6, thinking: { type: "enabled", budget_tokens: 1024 }, messages: [{ role: "user", content: "think" }], ...greedy });
    let thinking = "";
    for await (const ev of s) if (ev.type === "content_block_delta" && ev.delta.type === "thinking_delta") thinking += ev.delta.thinking;
    assert.equal(thinking, (r.content[0] as Anthropic.ThinkingBlock).thinking);
    const off = await client.messages.create({ model: "thinker", max_tokens: 6, thinking: { type: "disabled" }, messages: [{ role: "user", content: "think" }] });
    assert.ok(off.content.every((b) => b.type !== "thinking"));
    await assert.rejects(
      client.messages.create({ model: "chat", max_tokens: 6, thinking: { type: "enabled", budget_tokens: 1024 }, messages: [{ role: "user", content: "x" }] }),
      (e: unknown) => e instanceof Anthropic.BadRequestError && /does not support thinking/.test(e.message),
    );
  });

  test("a stop sequence ends the answer with stop_reason stop_sequence", async () => {
    // greedy: the same answer twice; the second stops at a piece of the first
    const first = await client.messages.create({ model: "chat", max_tokens: 12, messages: [{ role: "user", content: "x" }], ...greedy });
    const text = (first.content[0] as Anthropic.TextBlock).text;
    const stop = [...text.slice(3)].find((c) => /[a-z]/.test(c));
    assert.ok(stop, text);
    const r = await client.messages.create({ model: "chat", max_tokens: 12, messages: [{ role: "user", content: "x" }], ...greedy, stop_sequences: [stop] });
    assert.equal(r.stop_reason, "stop_sequence");
    assert.equal(r.stop_sequence, stop);
    assert.equal((r.content[0] as Anthropic.TextBlock).text, text.slice(0, text.indexOf(stop)));
  });

  test("errors in Anthropic's shape: unknown model, images, prompt caching, count_tokens", async () => {
    await assert.rejects(client.messages.create({ model: "missing", max_tokens: 5, messages: [{ role: "user", content: "x" }] }), (e: unknown) => {
      assert.ok(e instanceof Anthropic.NotFoundError);
      assert.equal((e.error as { type: string }).type, "error");
      return true;
    });
    await assert.rejects(client.messages.create({ model: "chat", max_tokens: 5, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } }] }] }), (e: unknown) => e instanceof Anthropic.BadRequestError && /vision/.test(e.message));
    await assert.rejects(client.messages.create({ model: "chat", max_tokens: 5, system: [{ type: "text", text: "s", cache_control: { type: "ephemeral" } }], messages: [{ role: "user", content: "x" }] }), (e: unknown) => e instanceof Anthropic.BadRequestError && /cache_control/.test(e.message));
    await assert.rejects(client.messages.countTokens({ model: "chat", messages: [{ role: "user", content: "x" }] }), (e: unknown) => e instanceof Anthropic.BadRequestError && /count_tokens is not supported/.test(e.message));
    const raw = await fetch(`${h.base}/v1/messages`, { method: "POST", headers: { "x-api-key": "k", "anthropic-version": "2023-06-01" }, body: JSON.stringify({ model: "chat", messages: [] }) });
    assert.equal(raw.status, 400);
    const j = (await raw.json()) as any;
    assert.equal(j.type, "error");
    assert.equal(j.error.type, "invalid_request_error");
    assert.match(j.error.message, /max_tokens/);
  });

  test("an abort mid-stream ends it; the server goes on serving", async () => {
    const s = client.messages.stream({ model: "chat", max_tokens: 400, messages: [{ role: "user", content: "go on" }] });
    let deltas = 0;
    try {
      for await (const ev of s) if (ev.type === "content_block_delta" && ++deltas === 3) s.abort();
    } catch (e) {
      assert.ok(e instanceof Anthropic.APIUserAbortError, String(e));
    }
    assert.equal(deltas, 3);
    const r = await client.messages.create({ model: "chat", max_tokens: 3, messages: [{ role: "user", content: "again" }] });
    assert.equal(r.usage.output_tokens, 3);
  });

  test("the loopback Host guard and CORS on /v1/messages: a foreign Host or Origin is a 403 in Anthropic's shape", async () => {
    const body = { model: "chat", max_tokens: 1, messages: [{ role: "user", content: "x" }] };
    for (const headers of [{ host: "evil.example.com" }, { origin: "https://evil.example.com" }] as Record<string, string>[]) {
      for (const path of ["/v1/messages", "/v1/messages/count_tokens"]) {
        const r = await rawRequest(h.base, "POST", path, { ...headers, "anthropic-version": "2023-06-01" }, body);
        assert.equal(r.status, 403);
        assert.equal(r.json.type, "error");
        assert.equal(r.json.error.type, "permission_error");
        assert.match(r.json.error.message, headers.host ? /host not allowed/ : /origin not allowed/);
      }
    }
    const foreign = new Anthropic({ baseURL: h.base, apiKey: "k", maxRetries: 0, defaultHeaders: { origin: "https://evil.example.com" } });
    await assert.rejects(foreign.messages.create(body as Anthropic.MessageCreateParamsNonStreaming), (e: unknown) => e instanceof Anthropic.PermissionDeniedError && /origin not allowed/.test(e.message));
    const ok = await rawRequest(h.base, "POST", "/v1/messages", { origin: "vscode-webview://abc", "anthropic-version": "2023-06-01" }, body);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers["access-control-allow-origin"], "vscode-webview://abc");
  });
});
