/**
 * The OpenAI-compatible API driven by the Vercel AI SDK (`ai` with `@ai-sdk/openai-compatible`) over
 * HTTP on 127.0.0.1, against the real engine on the tiny random-weight model: chat (generateText and
 * streamText, with usage), completions (the provider's completionModel), embeddings (embed, embedMany,
 * dimensions), structured output from a zod schema through Output.object, a forced tool call and a
 * tool loop that sends its result back, thinking as reasoning, stop sequences, an abort mid-stream and
 * an unknown model as the SDK's APICallError.
 *
 * What the provider does not offer, and so is not driven here: a model list (it has no models API) and
 * base64 embeddings (it always asks for `encoding_format: "float"`; base64 is covered by the openai and
 * langchain tests, whose client asks for it by default).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { APICallError, Output, embed, embedMany, generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import type { Harness } from "./harness.js";
import { startCompatHarness } from "./compat-harness.js";

// the SDK's own warnings go to the console; the tests read them from each result instead
(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false;

let h: Harness;
let mf: ReturnType<typeof createOpenAICompatible>;
/** the bodies the SDK sent, to check what it asked mf for */
const sent: Record<string, any>[] = [];
before(async () => {
  h = await startCompatHarness();
  const recording: typeof fetch = async (url, init) => {
    if (typeof init?.body === "string") sent.push(JSON.parse(init.body));
    return fetch(url, init);
  };
  mf = createOpenAICompatible({ name: "mf", baseURL: `${h.base}/v1`, apiKey: "ignored-by-mf", includeUsage: true, supportsStructuredOutputs: true, fetch: recording });
});
after(async () => h?.close());

const retries = { maxRetries: 0 };
const weather = tool({ description: "the weather of a city", inputSchema: z.object({ city: z.string().max(8) }) });

describe("ai sdk client", { concurrency: false }, () => {
  test("generateText: the answer, its finish reason, usage and response metadata, with no warnings", async () => {
    const r = await generateText({ model: mf("chat"), system: "be brief", prompt: "hello", maxOutputTokens: 6, seed: 3, temperature: 0.8, ...retries });
    assert.equal(typeof r.text, "string");
    assert.ok(r.text.length > 0);
    assert.equal(r.finishReason, "length");
    assert.equal(r.usage.outputTokens, 6);
    assert.ok(r.usage.inputTokens! > 5);
    assert.equal(r.usage.totalTokens, r.usage.inputTokens! + 6);
    assert.equal(r.response.modelId, "chat");
    assert.match(r.response.id, /^chatcmpl-/);
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(sent.at(-1)!.messages, [{ role: "system", content: "be brief" }, { role: "user", content: "hello" }]);
  });

  test("streamText: text deltas that add up to the same answer, then the finish reason and usage", async () => {
    const call = { model: mf("chat"), prompt: "count", maxOutputTokens: 8, seed: 11, temperature: 0.8, ...retries };
    const whole = await generateText(call);
    const s = streamText(call);
    const types: string[] = [];
    let text = "";
    for await (const part of s.fullStream) {
      types.push(part.type);
      if (part.type === "text-delta") text += part.text;
      if (part.type === "error") assert.fail(String(part.error));
    }
    assert.equal(text, whole.text);
    assert.equal(await s.text, whole.text);
    assert.ok(types.filter((t) => t === "text-delta").length > 1, types.join());
    assert.deepEqual(types.slice(-2), ["finish-step", "finish"]);
    assert.equal(await s.finishReason, "length");
    // usage came in the stream because the provider asked for it (stream_options.include_usage)
    assert.deepEqual(sent.at(-1)!.stream_options, { include_usage: true });
    assert.equal((await s.usage).outputTokens, 8);
    assert.equal((await s.usage).inputTokens, whole.usage.inputTokens);
  });

  test("a stop sequence ends the answer before it", async () => {
    const call = { model: mf("chat"), prompt: "x", maxOutputTokens: 12, temperature: 0, ...retries };
    const first = await generateText(call);
    const stop = [...first.text.slice(3)].find((c) => /[a-z]/.test(c));
    assert.ok(stop, first.text);
    const r = await generateText({ ...call, stopSequences: [stop] });
    assert.equal(r.text, first.text.slice(0, first.text.indexOf(stop)));
    assert.equal(r.finishReason, "stop");
  });

  test("completions through the provider's completionModel, whole and streamed, with usage", async () => {
    const call = { model: mf.completionModel("chat"), prompt: "Once upon", maxOutputTokens: 5, seed: 2, ...retries };
    const r = await generateText(call);
    assert.equal(r.usage.outputTokens, 5);
    assert.equal(r.finishReason, "length");
    // the SDK sends a plain prompt (its own "user:/assistant:" framing of the text) to /v1/completions
    assert.match(sent.at(-1)!.prompt, /Once upon/);
    assert.equal(sent.at(-1)!.messages, undefined);
    const s = streamText(call);
    let text = "";
    for await (const t of s.textStream) text += t;
    assert.equal(text, r.text);
    assert.equal((await s.usage).outputTokens, 5);
  });

  test("embeddings: embed and embedMany agree, vectors are normalised, dimensions shortens them", async () => {
    const one = await embed({ model: mf.embeddingModel("chat"), value: "red apple", ...retries });
    assert.equal(sent.at(-1)!.encoding_format, "float");
    assert.ok(Math.abs(Math.hypot(...one.embedding) - 1) < 1e-5);
    assert.ok(one.usage.tokens > 0);
    const many = await embedMany({ model: mf.embeddingModel("chat"), values: ["red apple", "green pear"], ...retries });
    assert.equal(many.embeddings.length, 2);
    assert.ok(many.embeddings[0]!.every((x, i) => Math.abs(x - one.embedding[i]!) < 1e-6));
    assert.notDeepEqual(many.embeddings[0], many.embeddings[1]);
    const short = await embed({ model: mf.embeddingModel("chat"), value: "red apple", providerOptions: { mf: { dimensions: 8 } }, ...retries });
    assert.equal(short.embedding.length, 8);
    assert.ok(Math.abs(Math.hypot(...short.embedding) - 1) < 1e-5);
  });

  test("structured output: a zod schema sent as json_schema, the answer parsed and checked by the SDK", async () => {
    const Person = z.object({ name: z.string().max(10), age: z.number().int().min(0).max(120), tags: z.array(z.enum(["a", "b"])).max(2) });
    for (const seed of [1, 2, 3]) {
      const r = await generateText({ model: mf("chat"), prompt: "a person", output: Output.object({ schema: Person, name: "person" }), seed, maxOutputTokens: 200, ...retries });
      assert.equal(sent.at(-1)!.response_format.type, "json_schema");
      assert.deepEqual(Person.parse(r.output), r.output);
      assert.equal(r.finishReason, "stop");
      assert.deepEqual(r.warnings, []);
    }
    // streamed: partial objects as the JSON grows, then the whole one
    const s = streamText({ model: mf("chat"), prompt: "a person", output: Output.object({ schema: Person }), seed: 4, maxOutputTokens: 200, ...retries });
    const partials = [];
    for await (const p of s.partialOutputStream) partials.push(p);
    const final = await s.output;
    assert.ok(partials.length > 1);
    assert.deepEqual(Person.parse(final), final);
  });

  test("tools: a forced toolChoice gives the call with an id and no text, streamed or not", async () => {
    for (const seed of [3, 4, 5]) {
      const r = await generateText({ model: mf("tooly"), prompt: "weather in Oslo?", tools: { get_weather: weather }, toolChoice: { type: "tool", toolName: "get_weather" }, seed, maxOutputTokens: 100, ...retries });
      assert.deepEqual(sent.at(-1)!.tool_choice, { type: "function", function: { name: "get_weather" } });
      assert.equal(r.finishReason, "tool-calls");
      assert.equal(r.toolCalls.length, 1);
      const call = r.toolCalls[0]!;
      assert.equal(call.toolName, "get_weather");
      assert.match(call.toolCallId, /^call_/);
      assert.equal(typeof (call.input as { city: string }).city, "string");
      assert.equal(r.text, "", `seed ${seed}: nothing beside the call`);
    }
    const s = streamText({ model: mf("tooly"), prompt: "weather?", tools: { get_weather: weather }, toolChoice: "required", seed: 6, maxOutputTokens: 100, ...retries });
    const calls = [];
    for await (const part of s.fullStream) if (part.type === "tool-call") calls.push(part);
    assert.equal(calls.length, 1);
    assert.match(calls[0]!.toolCallId, /^call_/);
    assert.equal(await s.finishReason, "tool-calls");
    // toolChoice none: no tools reach the model, so no call comes back
    const none = await generateText({ model: mf("tooly"), prompt: "weather?", tools: { get_weather: weather }, toolChoice: "none", seed: 6, maxOutputTokens: 5, ...retries });
    assert.equal(none.toolCalls.length, 0);
  });

  test("a tool loop: the forced call is executed and its result goes back under the call's id", async () => {
    const executed: string[] = [];
    const run = tool({ description: "the weather of a city", inputSchema: z.object({ city: z.string().max(8) }), execute: async ({ city }) => (executed.push(city), { city, sky: "sunny" }) });
    const r = await generateText({
      model: mf("tooly"),
      prompt: "weather in Oslo?",
      tools: { get_weather: run },
      toolChoice: "required",
      // the second step answers in text
      prepareStep: ({ stepNumber }) => (stepNumber === 1 ? { toolChoice: "none" } : {}),
      stopWhen: stepCountIs(2),
      seed: 4,
      maxOutputTokens: 100,
      ...retries,
    });
    assert.equal(r.steps.length, 2);
    assert.equal(executed.length, 1);
    const id = r.steps[0]!.toolCalls[0]!.toolCallId;
    const second = sent.at(-1)!;
    const toolMessage = second.messages.find((m: { role: string }) => m.role === "tool");
    assert.equal(toolMessage.tool_call_id, id);
    assert.equal(second.messages.find((m: { role: string }) => m.role === "assistant").tool_calls[0].id, id);
    assert.notEqual(r.steps[1]!.finishReason, "tool-calls");
    assert.equal(r.totalUsage.outputTokens, r.steps[0]!.usage.outputTokens! + r.steps[1]!.usage.outputTokens!);
  });

  test("thinking comes back as reasoning, streamed as reasoning deltas; reasoningEffort none turns it off", async () => {
    const call = { model: mf("thinker"), prompt: "think", maxOutputTokens: 6, seed: 7, ...retries };
    const r = await generateText(call);
    assert.ok(r.reasoningText && r.reasoningText.length > 0, JSON.stringify(r.content));
    assert.equal(r.text, "");
    const s = streamText(call);
    let reasoning = "";
    for await (const part of s.fullStream) if (part.type === "reasoning-delta") reasoning += part.text;
    assert.equal(reasoning, r.reasoningText);
    const off = await generateText({ ...call, providerOptions: { mf: { reasoningEffort: "none" } } });
    assert.equal(sent.at(-1)!.reasoning_effort, "none");
    assert.equal(off.reasoningText, undefined);
    assert.ok(off.text.length > 0);
  });

  test("an abort mid-stream ends the stream with an abort part; the server goes on serving", async () => {
    const ac = new AbortController();
    let aborted = false;
    const s = streamText({ model: mf("chat"), prompt: "go on", maxOutputTokens: 400, abortSignal: ac.signal, onAbort: () => void (aborted = true), ...retries });
    const types: string[] = [];
    let deltas = 0;
    for await (const part of s.fullStream) {
      types.push(part.type);
      if (part.type === "text-delta" && ++deltas === 3) ac.abort();
    }
    assert.equal(deltas, 3, "no text after the abort");
    assert.equal(types.at(-1), "abort");
    assert.ok(aborted);
    const again = await generateText({ model: mf("chat"), prompt: "again", maxOutputTokens: 3, ...retries });
    assert.equal(again.usage.outputTokens, 3);
  });

  test("an unknown model is the SDK's APICallError with status 404 and mf's message, for every model kind", async () => {
    const notFound = (e: unknown) => {
      assert.ok(APICallError.isInstance(e), String(e));
      assert.equal(e.statusCode, 404);
      assert.equal(e.isRetryable, false);
      assert.match(e.message, /model "missing" not found/);
      assert.equal(JSON.parse(e.responseBody!).error.code, "model_not_found");
      return true;
    };
    await assert.rejects(generateText({ model: mf("missing"), prompt: "x", ...retries }), notFound);
    await assert.rejects(generateText({ model: mf.completionModel("missing"), prompt: "x", ...retries }), notFound);
    await assert.rejects(embed({ model: mf.embeddingModel("missing"), value: "x", ...retries }), notFound);
    // streamed: the error arrives as the stream's error part, before any text
    const parts = [];
    for await (const part of streamText({ model: mf("missing"), prompt: "x", ...retries, onError: () => {} }).fullStream) parts.push(part);
    const err = parts.find((p) => p.type === "error");
    assert.ok(err && notFound(err.error));
    assert.ok(!parts.some((p) => p.type === "text-delta"));
    // a client mistake is a 400 in the same shape, never a 500
    await assert.rejects(generateText({ model: mf("chat"), prompt: "x", tools: { get_weather: weather }, ...retries }), (e: unknown) => APICallError.isInstance(e) && e.statusCode === 400 && /does not support tools/.test(e.message));
  });
});
