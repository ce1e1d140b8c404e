/**
 * The OpenAI-compatible API driven by LangChain (`@langchain/openai` over `@langchain/core`) over HTTP on
 * 127.0.0.1, against the real engine on the tiny random-weight model: ChatOpenAI (invoke, stream,
 * usage_metadata, withStructuredOutput from zod, bindTools with a forced tool_choice and the result sent
 * back as a ToolMessage), OpenAIEmbeddings (embedQuery, embedDocuments, the client's default base64 and
 * float, dimensions), the completions LLM class `OpenAI`, an abort through a signal, and an unknown model
 * as the client's not-found error.
 *
 * LangChain has no model-list call, so /v1/models is not driven here (the openai test covers it).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { HumanMessage, SystemMessage, ToolMessage, type AIMessageChunk } from "@langchain/core/messages";
import { ChatOpenAI, OpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { z } from "zod";
import type { Harness } from "./harness.js";
import { startCompatHarness } from "./compat-harness.js";

let h: Harness;
/** the bodies the client sent, to check what it asked mf for */
const sent: Record<string, any>[] = [];
let configuration: { baseURL: string; fetch: typeof fetch };
before(async () => {
  h = await startCompatHarness();
  const recording: typeof fetch = async (url, init) => {
    if (typeof init?.body === "string") sent.push(JSON.parse(init.body));
    return fetch(url, init);
  };
  configuration = { baseURL: `${h.base}/v1`, fetch: recording };
});
after(async () => h?.close());

const common = () => ({ apiKey: "ignored-by-mf", maxRetries: 0, configuration });
const chat = (model: string, maxTokens: number, more: Record<string, unknown> = {}) => new ChatOpenAI({ model, maxTokens, ...common(), ...more });

async function collect(stream: AsyncIterable<AIMessageChunk>): Promise<{ chunks: number; all: AIMessageChunk }> {
  let all: AIMessageChunk | undefined;
  let chunks = 0;
  for await (const c of stream) {
    chunks++;
    all = all ? all.concat(c) : c;
  }
  assert.ok(all, "at least one chunk");
  return { chunks, all };
}

const weather = { name: "get_weather", description: "the weather of a city", schema: z.object({ city: z.string().max(8) }) };

describe("langchain client", { concurrency: false }, () => {
  test("ChatOpenAI.invoke: the answer, usage_metadata and the finish reason", async () => {
    const r = await chat("chat", 6, { temperature: 0.8 }).invoke([new SystemMessage("be brief"), new HumanMessage("hello")], { seed: 3 });
    assert.equal(typeof r.content, "string");
    assert.ok((r.content as string).length > 0);
    assert.equal(r.usage_metadata!.output_tokens, 6);
    assert.ok(r.usage_metadata!.input_tokens > 5);
    assert.equal(r.usage_metadata!.total_tokens, r.usage_metadata!.input_tokens + 6);
    assert.equal(r.response_metadata.finish_reason, "length");
    assert.equal(r.response_metadata.model_name, "chat");
    assert.match(r.id!, /^chatcmpl-/);
    assert.equal(sent.at(-1)!.seed, 3);
  });

  test("ChatOpenAI.stream: chunks that add up to the same answer, with usage_metadata from the usage chunk", async () => {
    const model = chat("chat", 8, { temperature: 0.8 });
    const whole = await model.invoke("count", { seed: 11 });
    const { chunks, all } = await collect(await model.stream("count", { seed: 11 }));
    assert.ok(chunks > 2);
    assert.equal(all.content, whole.content);
    assert.equal(sent.at(-1)!.stream_options?.include_usage, true);
    assert.deepEqual(
      { input: all.usage_metadata!.input_tokens, output: all.usage_metadata!.output_tokens },
      { input: whole.usage_metadata!.input_tokens, output: 8 },
    );
    assert.equal(all.response_metadata.finish_reason, "length");
  });

  test("withStructuredOutput(zod): json_schema sent, the answer parsed and checked by the client", async () => {
    const Person = z.object({ name: z.string().max(10), age: z.number().int().min(0).max(120), tags: z.array(z.enum(["a", "b"])).max(2) });
    for (const seed of [1, 2, 3]) {
      const person = await chat("chat", 200, { modelKwargs: { seed } }).withStructuredOutput(Person, { name: "person" }).invoke("a person");
      assert.equal(sent.at(-1)!.response_format.type, "json_schema");
      assert.equal(sent.at(-1)!.response_format.json_schema.name, "person");
      assert.deepEqual(Person.parse(person), person);
    }
    const raw = await chat("chat", 200, { modelKwargs: { seed: 4 } }).withStructuredOutput(Person, { includeRaw: true }).invoke("a person");
    assert.deepEqual(raw.parsed, JSON.parse(raw.raw.content as string));
    assert.equal((raw.raw as AIMessageChunk).response_metadata.finish_reason, "stop");
  });

  test("bindTools with a forced tool_choice: the call with an id, streamed or not; its ToolMessage goes back", async () => {
    const model = chat("tooly", 100).bindTools([weather], { tool_choice: "get_weather" });
    const r = await model.invoke("weather in Oslo?", { seed: 4 });
    assert.deepEqual(sent.at(-1)!.tool_choice, { type: "function", function: { name: "get_weather" } });
    assert.equal(r.tool_calls!.length, 1);
    const call = r.tool_calls![0]!;
    assert.equal(call.name, "get_weather");
    assert.match(call.id!, /^call_/);
    assert.equal(typeof call.args.city, "string");
    assert.equal(r.content, "", "nothing beside the call");
    assert.equal(r.response_metadata.finish_reason, "tool_calls");
    const { all } = await collect(await model.stream("weather?", { seed: 5 }));
    assert.equal(all.tool_calls!.length, 1);
    assert.match(all.tool_calls![0]!.id!, /^call_/);
    assert.equal(all.tool_call_chunks!.length, 1, "each call arrives whole, in one chunk");
    // the result goes back under the call's id; "any" (sent as "required") forces a call again
    const next = await chat("tooly", 100).bindTools([weather], { tool_choice: "any" }).invoke([new HumanMessage("weather in Oslo?"), r, new ToolMessage({ tool_call_id: call.id!, content: "sunny" })], { seed: 6 });
    const body = sent.at(-1)!;
    assert.equal(body.tool_choice, "required");
    assert.deepEqual(body.messages.at(-1), { role: "tool", tool_call_id: call.id, content: "sunny" });
    assert.equal(next.tool_calls![0]!.name, "get_weather");
    // a model whose template has no tools: the client's own error for a 400
    await assert.rejects(chat("chat", 5).bindTools([weather]).invoke("x"), (e: any) => e.status === 400 && /does not support tools/.test(e.message));
  });

  test("OpenAIEmbeddings: embedQuery and embedDocuments, the client's default base64 equal to float, dimensions", async () => {
    const base64 = new OpenAIEmbeddings({ model: "chat", ...common() });
    const q = await base64.embedQuery("red apple");
    // the openai client under LangChain asks for base64 unless told otherwise, and decodes it
    assert.equal(sent.at(-1)!.encoding_format, "base64");
    assert.ok(Math.abs(Math.hypot(...q) - 1) < 1e-5);
    const docs = await base64.embedDocuments(["red apple", "green pear"]);
    assert.equal(docs.length, 2);
    assert.notDeepEqual(docs[0], docs[1]);
    const floats = await new OpenAIEmbeddings({ model: "chat", encodingFormat: "float", ...common() }).embedDocuments(["red apple"]);
    assert.equal(sent.at(-1)!.encoding_format, "float");
    assert.equal(floats[0]!.length, q.length);
    assert.ok(floats[0]!.every((x, i) => Math.abs(x - q[i]!) < 1e-6 && Math.abs(x - docs[0]![i]!) < 1e-6));
    const short = await new OpenAIEmbeddings({ model: "chat", dimensions: 8, ...common() }).embedQuery("red apple");
    assert.equal(short.length, 8);
  });

  test("the completions LLM class: invoke, stream, and generate sending several prompts in one request", async () => {
    const llm = new OpenAI({ model: "chat", maxTokens: 5, modelKwargs: { seed: 2 }, ...common() });
    const text = await llm.invoke("Once upon");
    let streamed = "";
    for await (const t of await llm.stream("Once upon")) streamed += t;
    assert.equal(streamed, text);
    // generate batches its prompts into one request; each answer comes back as the choice of its index
    const g = await llm.generate(["Once upon", "Long ago"]);
    assert.deepEqual(sent.at(-1)!.prompt, ["Once upon", "Long ago"]);
    assert.equal(g.generations.length, 2);
    assert.equal(g.generations[0]![0]!.text, text);
    assert.equal(g.generations[1]![0]!.text, await llm.invoke("Long ago"));
    assert.equal(g.generations[0]![0]!.generationInfo!.finishReason, "length");
    assert.equal(g.llmOutput!.tokenUsage.completionTokens, 10);
    assert.ok(g.llmOutput!.tokenUsage.promptTokens > 0);
  });

  test("an abort through the signal ends the stream with the client's AbortError; the server goes on serving", async () => {
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of await chat("chat", 400).stream("go on", { signal: ac.signal })) if (++n === 3) ac.abort();
      })(),
      (e: Error) => e.name === "AbortError",
    );
    assert.equal(n, 3, "no chunk after the abort");
    const again = await chat("chat", 3).invoke("again");
    assert.equal(again.usage_metadata!.output_tokens, 3);
  });

  test("an unknown model is the client's NotFoundError (404, MODEL_NOT_FOUND) for chat, embeddings and completions", async () => {
    const notFound = (e: any) => {
      assert.equal(e.constructor.name, "NotFoundError");
      assert.equal(e.status, 404);
      assert.equal(e.lc_error_code, "MODEL_NOT_FOUND");
      assert.match(e.message, /model "missing" not found/);
      assert.equal(e.error.type, "not_found_error");
      return true;
    };
    await assert.rejects(chat("missing", 5).invoke("x"), notFound);
    await assert.rejects(chat("missing", 5).stream("x").then(async (s) => { for await (const _ of s); }), notFound);
    await assert.rejects(new OpenAIEmbeddings({ model: "missing", ...common() }).embedQuery("x"), notFound);
    await assert.rejects(new OpenAI({ model: "missing", maxTokens: 5, ...common() }).invoke("x"), notFound);
  });
});
