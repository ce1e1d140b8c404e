/**
 * The OpenAI-compatible API driven by the official `openai` package over HTTP on 127.0.0.1, against the
 * real engine on the tiny random-weight model: chat (streamed or not, with usage), completions,
 * embeddings (float and the client's default base64), models, structured output parsed by the client's
 * own zod helper, forced tool calls, thinking as `reasoning`, responses, aborts and errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { type Harness, post } from "./harness.js";
import { rawRequest, startCompatHarness, weatherParameters } from "./compat-harness.js";

let h: Harness;
let client: OpenAI;
before(async () => {
  h = await startCompatHarness();
  client = new OpenAI({ baseURL: `${h.base}/v1`, apiKey: "sk-ignored-by-mf", maxRetries: 0 });
});
after(async () => h?.close());

const weatherTool = { type: "function" as const, function: { name: "get_weather", description: "the weather of a city", parameters: weatherParameters } };

describe("openai client", { concurrency: false }, () => {
  test("chat completion: the answer, a finish reason and usage", async () => {
    const r = await client.chat.completions.create({ model: "chat", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hello" }], max_tokens: 6, seed: 3, temperature: 0.8 });
    assert.equal(r.object, "chat.completion");
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.model, "chat");
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.equal(typeof r.choices[0]!.message.content, "string");
    assert.equal(r.choices[0]!.finish_reason, "length");
    assert.equal(r.usage!.completion_tokens, 6);
    assert.ok(r.usage!.prompt_tokens > 5);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 6);
  });

  test("streamed chat: the role first, text deltas that add up to the same answer, a finish chunk and a usage chunk", async () => {
    const body = { model: "chat", messages: [{ role: "user" as const, content: "count" }], max_tokens: 8, seed: 11, temperature: 0.8 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, whole.choices[0]!.message.content);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(finish.length, 1);
    assert.equal(finish[0]!.choices[0]!.finish_reason, "length");
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage!.completion_tokens, 8);
    assert.ok(chunks.every((c) => c.id === chunks[0]!.id && c.object === "chat.completion.chunk"));
  });

  test("completions, whole and streamed", async () => {
    const r = await client.completions.create({ model: "chat", prompt: "Once upon", max_tokens: 5, seed: 2 });
    assert.equal(r.object, "text_completion");
    assert.equal(typeof r.choices[0]!.text, "string");
    assert.equal(r.usage!.completion_tokens, 5);
    const s = await client.completions.create({ model: "chat", prompt: "Once upon", max_tokens: 5, seed: 2, stream: true });
    let text = "";
    for await (const c of s) text += c.choices[0]?.text ?? "";
    assert.equal(text, r.choices[0]!.text);
    // several prompts: one choice each, by index, streamed or not; usage adds up
    const other = await client.completions.create({ model: "chat", prompt: "Long ago", max_tokens: 5, seed: 2 });
    const both = await client.completions.create({ model: "chat", prompt: ["Once upon", "Long ago"], max_tokens: 5, seed: 2 });
    assert.deepEqual(both.choices.map((c) => [c.index, c.text, c.finish_reason]), [[0, r.choices[0]!.text, "length"], [1, other.choices[0]!.text, "length"]]);
    assert.equal(both.usage!.completion_tokens, 10);
    assert.equal(both.usage!.prompt_tokens, r.usage!.prompt_tokens + other.usage!.prompt_tokens);
    const bs = await client.completions.create({ model: "chat", prompt: ["Once upon", "Long ago"], max_tokens: 5, seed: 2, stream: true, stream_options: { include_usage: true } });
    const texts = ["", ""];
    const finishes: (string | null)[] = [];
    let streamedUsage;
    for await (const c of bs) {
      for (const ch of c.choices) {
        texts[ch.index] += ch.text;
        if (ch.finish_reason) finishes[ch.index] = ch.finish_reason;
      }
      streamedUsage ??= c.usage ?? undefined;
    }
    assert.deepEqual(texts, both.choices.map((c) => c.text));
    assert.deepEqual(finishes, ["length", "length"]);
    assert.equal(streamedUsage!.completion_tokens, 10);
    await assert.rejects(client.completions.create({ model: "chat", prompt: [1, 2, 3], max_tokens: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /token arrays are not supported/.test(e.message));
    // a suffix needs a template that uses .Suffix, as on /api/generate; with one, both reach the prompt
    await assert.rejects(client.completions.create({ model: "chat", prompt: "x", suffix: "y", max_tokens: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && /"chat" does not support insert/.test(e.message));
    const fim = await post(h.base, "/api/create", { model: "fim", from: "chat", template: "{{ if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{ else }}{{ .Prompt }}{{ end }}", stream: false });
    assert.equal(fim.status, 200, fim.text);
    const infill = await client.completions.create({ model: "fim", prompt: "def f(", suffix: "return x", max_tokens: 3, temperature: 0 });
    const plain = await client.completions.create({ model: "fim", prompt: "def f(", max_tokens: 3, temperature: 0 });
    assert.ok(infill.usage!.prompt_tokens > plain.usage!.prompt_tokens, "the suffix is in the prompt");
    // what it cannot honour is refused, not ignored
    for (const [field, message] of [[{ echo: true }, /echo/], [{ best_of: 3 }, /best_of/], [{ logprobs: 2 }, /logprobs is not supported on \/v1\/completions/], [{ n: 2 }, /only one choice/]] as const) {
      await assert.rejects(client.completions.create({ model: "chat", prompt: "x", max_tokens: 5, ...field }), (e: unknown) => e instanceof OpenAI.BadRequestError && message.test(e.message));
    }
  });

  test("embeddings: floats, the client's default base64 decoded to the same vectors, dimensions", async () => {
    const floats = await client.embeddings.create({ model: "chat", input: ["red apple", "green pear"], encoding_format: "float" });
    assert.equal(floats.object, "list");
    assert.equal(floats.data.length, 2);
    assert.deepEqual(floats.data.map((d) => d.index), [0, 1]);
    const v = floats.data[0]!.embedding;
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5, "normalised");
    // the client asks for base64 unless told otherwise, and decodes it
    const b64 = await client.embeddings.create({ model: "chat", input: "red apple" });
    const w = b64.data[0]!.embedding;
    assert.equal(w.length, v.length);
    assert.ok(w.every((x, i) => Math.abs(x - v[i]!) < 1e-6));
    const raw = await fetch(`${h.base}/v1/embeddings`, { method: "POST", body: JSON.stringify({ model: "chat", input: "red apple", encoding_format: "base64" }) }).then((r) => r.json() as Promise<any>);
    assert.equal(typeof raw.data[0].embedding, "string");
    const short = await client.embeddings.create({ model: "chat", input: "red apple", dimensions: 8, encoding_format: "float" });
    assert.equal(short.data[0]!.embedding.length, 8);
    assert.ok(floats.usage.prompt_tokens > 0);
  });

  test("models: list and retrieve, named as on /api/tags", async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    const tags = await fetch(`${h.base}/api/tags`).then((r) => r.json() as Promise<any>);
    assert.deepEqual(ids.sort(), tags.models.map((m: { name: string }) => m.name).sort());
    const m = await client.models.retrieve("chat");
    assert.equal(m.id, "chat");
    assert.equal(m.object, "model");
    assert.equal(m.owned_by, "library");
    await assert.rejects(client.models.retrieve("no-such-model"), OpenAI.NotFoundError);
  });

  test("structured output: json_schema from zod, parsed by the client's own helper", async () => {
    const Person = z.object({ name: z.string().max(10), age: z.number().int().min(0).max(120), tags: z.array(z.enum(["a", "b"])).max(2) });
    for (const seed of [1, 2, 3]) {
      const r = await client.chat.completions.parse({ model: "chat", messages: [{ role: "user", content: "a person" }], response_format: zodResponseFormat(Person, "person"), seed, max_tokens: 200 });
      const parsed = r.choices[0]!.message.parsed;
      assert.ok(parsed, r.choices[0]!.message.content ?? "");
      assert.deepEqual(Person.parse(parsed), parsed);
      assert.equal(r.choices[0]!.finish_reason, "stop");
    }
  });

  test("tools: a named tool_choice forces the call; it comes back with an id, streamed or not", async () => {
    const body = { model: "tooly", messages: [{ role: "user" as const, content: "weather in Oslo?" }], tools: [weatherTool], tool_choice: { type: "function" as const, function: { name: "get_weather" } }, seed: 4, max_tokens: 100 };
    const r = await client.chat.completions.create(body);
    const call = r.choices[0]!.message.tool_calls![0]!;
    assert.equal(r.choices[0]!.finish_reason, "tool_calls");
    assert.match(call.id, /^call_/);
    assert.equal(call.type, "function");
    assert.equal((call as { function: { name: string } }).function.name, "get_weather");
    assert.equal(typeof JSON.parse((call as { function: { arguments: string } }).function.arguments).city, "string");
    const s = await client.chat.completions.create({ ...body, stream: true });
    const deltas = [];
    let finish;
    for await (const c of s) {
      deltas.push(...(c.choices[0]?.delta.tool_calls ?? []));
      finish ??= c.choices[0]?.finish_reason ?? undefined;
    }
    assert.equal(deltas.length, 1);
    assert.match(deltas[0]!.id!, /^call_/);
    assert.equal(deltas[0]!.index, 0);
    assert.equal(finish, "tool_calls");
    // the result goes back with its tool_call_id; "required" forces some call; "none" forbids calls
    const next = await client.chat.completions.create({
      model: "tooly",
      messages: [...body.messages, { role: "assistant", content: null, tool_calls: [call] }, { role: "tool", tool_call_id: call.id, content: "sunny" }],
      tools: [weatherTool],
      tool_choice: "required",
      max_tokens: 100,
      seed: 5,
    });
    assert.equal(next.choices[0]!.message.tool_calls![0]!.type, "function");
    const none = await client.chat.completions.create({ ...body, tool_choice: "none", max_tokens: 5 });
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
    await assert.rejects(client.chat.completions.create({ model: "chat", messages: body.messages, tools: [weatherTool] }), (e: unknown) => e instanceof OpenAI.BadRequestError && /does not support tools/.test(e.message));
  });

  test("thinking comes as reasoning, streamed and not; reasoning_effort none turns it off", async () => {
    const body = { model: "thinker", messages: [{ role: "user" as const, content: "think" }], max_tokens: 6, seed: 7 };
    const r = await client.chat.completions.create(body);
    const message = r.choices[0]!.message as { content: string | null; reasoning?: string };
    assert.ok(message.reasoning && message.reasoning.length > 0, JSON.stringify(message));
    assert.equal(message.content, "");
    const s = await client.chat.completions.create({ ...body, stream: true });
    let reasoning = "";
    for await (const c of s) reasoning += (c.choices[0]?.delta as { reasoning?: string } | undefined)?.reasoning ?? "";
    assert.equal(reasoning, message.reasoning);
    const off = await client.chat.completions.create({ ...body, reasoning_effort: "none" });
    assert.equal((off.choices[0]!.message as { reasoning?: string }).reasoning, undefined);
    assert.ok((off.choices[0]!.message.content ?? "").length > 0);
  });

  test("responses (stateless): output_text, streamed events, a clear error for previous_response_id", async () => {
    const r = await client.responses.create({ model: "chat", input: [{ role: "user", content: "hi" }], instructions: "be brief", max_output_tokens: 6, temperature: 0 });
    assert.equal(r.object, "response");
    assert.equal(r.status, "incomplete");
    assert.equal(r.usage!.output_tokens, 6);
    const s = await client.responses.create({ model: "chat", input: "hi", instructions: "be brief", max_output_tokens: 6, temperature: 0, stream: true });
    const types: string[] = [];
    let text = "";
    for await (const ev of s) {
      types.push(ev.type);
      if (ev.type === "response.output_text.delta") text += ev.delta;
    }
    assert.equal(types[0], "response.created");
    assert.ok(types.includes("response.output_text.done"));
    assert.equal(types.at(-1), "response.incomplete");
    assert.equal(text, r.output_text);
    await assert.rejects(client.responses.create({ model: "chat", input: "hi", previous_response_id: "resp_1" }), (e: unknown) => e instanceof OpenAI.BadRequestError && /stateless/.test(e.message));
  });

  test("an abort mid-stream stops the answer and the server goes on serving", async () => {
    const ac = new AbortController();
    const s = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "go on" }], max_tokens: 400, stream: true }, { signal: ac.signal });
    let n = 0;
    // the client ends the iteration (or throws its abort error) as soon as the signal fires
    try {
      for await (const _ of s) if (++n === 3) ac.abort();
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError, String(e));
    }
    assert.equal(n, 3, "no chunk after the abort");
    const after = await client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "again" }], max_tokens: 3 });
    assert.equal(after.usage!.completion_tokens, 3);
  });

  test("errors in OpenAI's shape: unknown model 404, bad requests 400, never a 500", async () => {
    await assert.rejects(client.chat.completions.create({ model: "missing", messages: [{ role: "user", content: "x" }] }), (e: unknown) => {
      assert.ok(e instanceof OpenAI.NotFoundError);
      assert.equal(e.status, 404);
      assert.match(e.message, /model "missing" not found/);
      return true;
    });
    const raw = await fetch(`${h.base}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "chat", messages: "nope" }) });
    assert.equal(raw.status, 400);
    const j = (await raw.json()) as any;
    assert.deepEqual(Object.keys(j.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(j.error.type, "invalid_request_error");
    await assert.rejects(client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:," } }] }] }), OpenAI.BadRequestError);
    await assert.rejects(client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "x" }], n: 2 }), OpenAI.BadRequestError);
    await assert.rejects(client.chat.completions.create({ model: "chat", messages: [{ role: "user", content: "x" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "integer", multipleOf: 3 } } } }), (e: unknown) => e instanceof OpenAI.BadRequestError && /multipleOf/.test(e.message));
    const unknown = await fetch(`${h.base}/v1/nothing-here`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as any).error.type, "not_found_error");
  });

  test("the loopback Host guard and CORS on /v1: a foreign Host or Origin is a 403 in OpenAI's shape", async () => {
    const chat = { model: "chat", messages: [{ role: "user", content: "x" }], max_tokens: 1 };
    for (const [method, path, body] of [["POST", "/v1/chat/completions", chat], ["GET", "/v1/models", undefined], ["POST", "/v1/embeddings", { model: "chat", input: "x" }]] as const) {
      for (const headers of [{ host: "evil.example.com" }, { origin: "https://evil.example.com" }] as Record<string, string>[]) {
        const r = await rawRequest(h.base, method, path, headers, body);
        assert.equal(r.status, 403, `${path} ${JSON.stringify(headers)}`);
        assert.deepEqual(Object.keys(r.json.error).sort(), ["code", "message", "param", "type"]);
        assert.equal(r.json.error.type, "permission_error");
        assert.match(r.json.error.message, headers.host ? /host not allowed/ : /origin not allowed/);
      }
    }
    // the client surfaces it as its own error
    const foreign = new OpenAI({ baseURL: `${h.base}/v1`, apiKey: "k", maxRetries: 0, defaultHeaders: { origin: "https://evil.example.com" } });
    await assert.rejects(foreign.chat.completions.create({ ...chat, messages: [{ role: "user", content: "x" }] }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError && /origin not allowed/.test(e.message));
    // an unknown /v1 path is refused the same way, and the native API keeps its own shape
    assert.equal((await rawRequest(h.base, "GET", "/v1/nothing-here", { host: "evil.example.com" })).json.error.type, "permission_error");
    assert.deepEqual((await rawRequest(h.base, "GET", "/api/tags", { host: "evil.example.com" })).json, { error: "forbidden: host not allowed" });
    // local names and allowed origins are served, with CORS on the answer and on a browser's preflight
    assert.equal((await rawRequest(h.base, "GET", "/v1/models", { host: "localhost:11434" })).status, 200);
    const ok = await rawRequest(h.base, "GET", "/v1/models", { origin: "http://localhost:3000" });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers["access-control-allow-origin"], "http://localhost:3000");
    const pre = await rawRequest(h.base, "OPTIONS", "/v1/chat/completions", { origin: "http://localhost:3000", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, x-stainless-os" });
    assert.equal(pre.status, 204);
    assert.match(String(pre.headers["access-control-allow-headers"]), /x-stainless-os/);
  });
});
