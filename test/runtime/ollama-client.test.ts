/** The official `ollama` npm client drives `mf serve` as an app would. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Ollama } from "ollama";
import { type Harness, startHarness } from "./harness.js";

let h: Harness;
let client: Ollama;
before(async () => {
  h = await startHarness();
  client = new Ollama({ host: h.base });
});
after(async () => h?.close());

const options = { seed: 3, num_predict: 12, temperature: 1.5, top_k: 0, top_p: 1 };

test("the ollama client: list, show, create, generate, chat, embed, copy, delete, ps", async () => {
  const { models } = await client.list();
  assert.ok(models.some((m) => m.name === "chat:latest" && m.details.family === "llama"));

  const shown = await client.show({ model: "chat" });
  assert.match(shown.template, /im_start/);
  assert.equal(shown.details.format, "gguf");

  // today's JSON form, which the client sends
  const steps: string[] = [];
  for await (const p of await client.create({ model: "helper", from: "chat", system: "You help.", parameters: { temperature: 0.2 }, stream: true })) {
    steps.push(p.status);
  }
  assert.equal(steps.at(-1), "success");
  assert.equal((await client.show({ model: "helper" })).system, "You help.");
  // a Modelfile, as older apps send it
  const viaModelfile = (await client.create({ model: "from-modelfile", modelfile: "FROM chat\nSYSTEM From a Modelfile.\n", stream: false } as never)) as unknown as { status: string };
  assert.equal(viaModelfile.status, "success");
  assert.equal((await client.show({ model: "from-modelfile" })).system, "From a Modelfile.");

  const g = await client.generate({ model: "helper", prompt: "hello", options });
  assert.equal(g.done, true);
  assert.equal(g.eval_count, 12);
  let streamed = "";
  for await (const part of await client.generate({ model: "helper", prompt: "hello", options, stream: true })) streamed += part.response;
  assert.equal(streamed, g.response);

  const c = await client.chat({ model: "chat", messages: [{ role: "user", content: "hi" }], options });
  assert.equal(c.message.role, "assistant");
  let chatStreamed = "";
  let last: { done: boolean; done_reason?: string } | undefined;
  for await (const part of await client.chat({ model: "chat", messages: [{ role: "user", content: "hi" }], options, stream: true })) {
    chatStreamed += part.message.content;
    last = part;
  }
  assert.equal(chatStreamed, c.message.content);
  assert.equal(last?.done, true);

  const e = await client.embed({ model: "chat", input: ["a", "b"] });
  assert.equal(e.embeddings.length, 2);
  const legacy = await client.embeddings({ model: "chat", prompt: "a" });
  assert.equal(legacy.embedding.length, e.embeddings[0]!.length);

  const ps = await client.ps();
  // one runner per weights file: chat and the model built FROM it share it, listed under each name asked for
  assert.deepEqual(ps.models.map((m) => m.name).sort(), ["chat:latest", "helper:latest"]);
  assert.equal(new Set(ps.models.map((m) => m.size)).size, 1, "one loaded copy");

  await client.copy({ source: "helper", destination: "helper-copy" });
  assert.ok((await client.list()).models.some((m) => m.name === "helper-copy:latest"));
  await client.delete({ model: "helper-copy" });
  assert.ok(!(await client.list()).models.some((m) => m.name === "helper-copy:latest"));

  await assert.rejects(client.generate({ model: "no-such-model", prompt: "x" }), (err: Error & { status_code?: number }) => {
    assert.equal(err.status_code, 404);
    assert.match(err.message, /not found/);
    return true;
  });
  assert.equal((await client.version()).version, "0.1.0");
});
