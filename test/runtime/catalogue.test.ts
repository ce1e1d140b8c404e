/** The model catalogue, create, blobs, embeddings, and the guard, over real HTTP with the real engine. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildFromModelfile } from "../../builder/build.js";
import { parseRef } from "../../core/reference.js";
import { TINY, writeLlamaGguf, writeLoraAdapterGguf } from "../../fixtures/gguf/index.js";
import { after, before, describe, test } from "node:test";
import { type Harness, post, startHarness } from "./harness.js";

let h: Harness;
before(async () => {
  h = await startHarness({ origins: ["https://app.example.com"] });
});
after(async () => h?.close());

const get = async (path: string, headers: Record<string, string> = {}) => fetch(h.base + path, { headers });
const del = async (body: unknown) => fetch(h.base + "/api/delete", { method: "DELETE", body: JSON.stringify(body) });

describe("catalogue", { concurrency: false }, () => {
  test("GET / and /api/version", async () => {
    const r = await get("/");
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "Ollama is running");
    assert.equal((await fetch(h.base + "/", { method: "HEAD" })).status, 200);
    assert.deepEqual(await (await get("/api/version")).json(), { version: "0.1.0" });
    const missing = await get("/api/nothing");
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /404/);
  });

  test("/api/tags lists models with details and the manifest digest", async () => {
    const { models } = (await (await get("/api/tags")).json()) as { models: any[] };
    const chat = models.find((m) => m.name === "chat:latest");
    assert.ok(chat);
    assert.equal(chat.model, "chat:latest");
    assert.match(chat.digest, /^[0-9a-f]{64}$/);
    assert.ok(chat.size > 0 && !Number.isNaN(Date.parse(chat.modified_at)));
    assert.deepEqual(Object.keys(chat.details).sort(), ["families", "family", "format", "parameter_size", "parent_model", "quantization_level"]);
    assert.equal(chat.details.family, "llama");
    assert.equal(chat.details.quantization_level, "F16");
  });

  test("/api/show by model or legacy name; 404 and 400", async () => {
    const a = (await post(h.base, "/api/show", { model: "chat" })).json;
    assert.match(a.template, /im_start/);
    assert.equal(a.system, "You are a test.");
    assert.equal(a.license, "test licence");
    assert.match(a.parameters, /num_ctx\s+512/);
    assert.match(a.parameters, /stop\s+"<\|im_end\|>"/);
    assert.match(a.modelfile, /^# Modelfile generated/);
    assert.match(a.modelfile, /FROM \S+sha256-[0-9a-f]{64}/);
    assert.equal(a.model_info["general.architecture"], "llama");
    assert.ok(a.capabilities.includes("completion"));
    assert.equal(a.details.family, "llama");
    const b = (await post(h.base, "/api/show", { name: "chat" })).json;
    assert.equal(b.template, a.template);
    assert.equal((await post(h.base, "/api/show", { model: "nope" })).status, 404);
    assert.equal((await post(h.base, "/api/show", {})).status, 400);
  });

  test("/api/copy and /api/delete: 200 with an empty body, 404 for unknown models", async () => {
    const c = await post(h.base, "/api/copy", { source: "chat", destination: "chat-copy:v1" });
    assert.equal(c.status, 200);
    assert.equal(c.text, "");
    assert.ok((await post(h.base, "/api/show", { model: "chat-copy:v1" })).status === 200);
    const missing = await post(h.base, "/api/copy", { source: "nope", destination: "x" });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error, 'model "nope" not found, try pulling it first');
    assert.equal((await post(h.base, "/api/copy", { source: "chat" })).status, 400);
    const d = await del({ model: "chat-copy:v1" });
    assert.equal(d.status, 200);
    assert.equal(await d.text(), "");
    assert.equal((await del({ name: "chat-copy:v1" })).status, 404);
    assert.equal((await post(h.base, "/api/show", { model: "chat" })).status, 200, "the source survives");
  });

  test("/api/create from a Modelfile (starting document's form), streaming status lines", async () => {
    const r = await post(h.base, "/api/create", { name: "mario", modelfile: "FROM chat\nSYSTEM You are Mario.\nPARAMETER temperature 0.5\n" });
    assert.equal(r.status, 200);
    const statuses = r.lines.map((l) => l.status);
    assert.equal(statuses.at(-1), "success");
    assert.ok(statuses.includes("writing manifest"));
    assert.ok(statuses.some((s) => /^using existing layer sha256:[0-9a-f]{64}$/.test(s)));
    assert.ok(statuses.some((s) => /^creating new layer sha256:[0-9a-f]{64}$/.test(s)));
    const show = (await post(h.base, "/api/show", { model: "mario" })).json;
    assert.equal(show.system, "You are Mario.");
    assert.match(show.parameters, /temperature\s+0\.5/);
    assert.match(show.parameters, /num_ctx\s+512/, "parameters merge with the base");
    const bad = await post(h.base, "/api/create", { name: "bad", modelfile: "FRM chat\n" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /FROM/);
    assert.equal((await post(h.base, "/api/create", { name: "q", modelfile: "FROM chat", quantize: "q4_K_M" })).status, 400);
  });

  test("/api/create JSON form with files uploaded through /api/blobs", async () => {
    const bytes = await readFile(h.gguf);
    const digest = "sha256:" + createHash("sha256").update(bytes).digest("hex");
    const wrong = "sha256:" + "0".repeat(64);
    assert.equal((await fetch(`${h.base}/api/blobs/${wrong}`, { method: "HEAD" })).status, 404);
    assert.equal((await fetch(`${h.base}/api/blobs/${wrong}`, { method: "POST", body: bytes })).status, 400, "digest mismatch");
    assert.equal((await fetch(`${h.base}/api/blobs/not-a-digest`, { method: "HEAD" })).status, 400);
    // the tiny model is in the store already (the harness built it): present → 200
    assert.equal((await fetch(`${h.base}/api/blobs/${digest}`, { method: "HEAD" })).status, 200);
    assert.equal((await fetch(`${h.base}/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 200);
    const other = Buffer.from("a new blob " + Date.now());
    const od = "sha256:" + createHash("sha256").update(other).digest("hex");
    assert.equal((await fetch(`${h.base}/api/blobs/${od}`, { method: "POST", body: other })).status, 201);
    assert.equal((await fetch(`${h.base}/api/blobs/${od}`, { method: "HEAD" })).status, 200);

    const r = await post(h.base, "/api/create", {
      model: "json-made",
      files: { "tiny.gguf": digest },
      template: "{{ .Prompt }}",
      system: "sys",
      parameters: { temperature: 0.3, stop: ["a", "b"] },
      messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }],
      license: ["L1", "L2"],
      stream: false,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: "success" });
    const show = (await post(h.base, "/api/show", { model: "json-made" })).json;
    assert.equal(show.system, "sys");
    assert.match(show.parameters, /stop\s+"a"\nstop\s+"b"/);
    assert.equal(show.license, "L1\nL2");
    assert.equal((await post(h.base, "/api/create", { model: "x" })).status, 400);
    assert.equal((await post(h.base, "/api/create", { model: "x", from: "no-such-model", stream: false })).status, 400);
    // streamed, a failure after the first line is a last {"error"} line (the status was sent already)
    const late = await post(h.base, "/api/create", { model: "x", from: "no-such-model" });
    assert.equal(late.status, 200);
    assert.deepEqual(late.lines[0], { status: "parsing modelfile" });
    assert.match(late.lines.at(-1).error, /no-such-model/);
    assert.equal(late.lines.at(-1).status, undefined);
  });

  test("/api/create with a LoRA adapter (JSON form); the runtime loads it over the base weights", async () => {
    const lora = join(h.dir, "lora.gguf");
    await writeLoraAdapterGguf(lora, { base: TINY, rank: 4, seed: 7 });
    const bytes = await readFile(lora);
    const digest = "sha256:" + createHash("sha256").update(bytes).digest("hex");
    assert.equal((await fetch(`${h.base}/api/blobs/${digest}`, { method: "POST", body: bytes })).status, 201);
    const r = await post(h.base, "/api/create", { model: "adapted", from: "raw", adapters: { "lora.gguf": digest }, stream: false });
    assert.equal(r.status, 200, r.text);
    assert.match((await post(h.base, "/api/show", { model: "adapted" })).json.modelfile, /\nADAPTER \S+sha256-[0-9a-f]{64}\n/);
    const gen = async (model: string) =>
      (await post(h.base, "/api/generate", { model, prompt: "once upon", raw: true, stream: false, options: { seed: 3, num_predict: 24, temperature: 1.5, top_k: 0, top_p: 1 } })).json;
    const base = await gen("raw");
    const adapted = await gen("adapted");
    assert.equal(adapted.eval_count, 24);
    assert.notEqual(adapted.response, base.response, "the adapter changes the weights");
    assert.equal((await gen("adapted")).response, adapted.response);
    const ps = ((await (await fetch(h.base + "/api/ps")).json()) as { models: { name: string }[] }).models.map((m) => m.name);
    assert.ok(ps.includes("adapted:latest") && ps.includes("raw:latest"), "base and adapted weights are two runners");
  });

  test("/api/create from a Modelfile on the server's disk (the starting document's `path`): only with --create-root", async () => {
    // read inside a create root: create-root.test.ts
    const path = join(h.dir, "Path.modelfile");
    await writeFile(path, "FROM chat\nSYSTEM From a path.\n");
    const r = await post(h.base, "/api/create", { name: "via-path", path, stream: false });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error, /this server reads no files, so "path" cannot be used/);
    const missing = await post(h.base, "/api/create", { name: "via-path", path: join(h.dir, "nope"), stream: false });
    assert.equal(missing.json.error, r.json.error.replace(path, join(h.dir, "nope")));
  });

  test("/api/embed normalises, batches and truncates; /api/embeddings is raw", async () => {
    const r = (await post(h.base, "/api/embed", { model: "chat", input: ["hello", "world"] })).json;
    assert.equal(r.model, "chat");
    assert.equal(r.embeddings.length, 2);
    for (const v of r.embeddings) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-6);
    assert.notDeepEqual(r.embeddings[0], r.embeddings[1]);
    assert.ok(r.prompt_eval_count > 0 && Number.isInteger(r.total_duration));
    const one = (await post(h.base, "/api/embed", { model: "chat", input: "hello" })).json;
    assert.deepEqual(one.embeddings[0], r.embeddings[0]);
    const dims = (await post(h.base, "/api/embed", { model: "chat", input: "hello", dimensions: 16 })).json;
    assert.equal(dims.embeddings[0].length, 16);
    assert.ok(Math.abs(Math.hypot(...dims.embeddings[0]) - 1) < 1e-6);
    const long = "word ".repeat(700);
    assert.equal((await post(h.base, "/api/embed", { model: "chat", input: long })).status, 200);
    const refused = await post(h.base, "/api/embed", { model: "chat", input: long, truncate: false });
    assert.equal(refused.status, 400);
    const legacy = (await post(h.base, "/api/embeddings", { model: "chat", prompt: "hello" })).json;
    assert.equal(legacy.embedding.length, r.embeddings[0].length);
    assert.ok(Math.abs(Math.hypot(...legacy.embedding) - 1) > 1e-3, "the legacy endpoint is not normalised");
    const n = Math.hypot(...legacy.embedding);
    assert.ok(legacy.embedding.every((x: number, i: number) => Math.abs(x / n - r.embeddings[0][i]) < 1e-6));
    assert.equal((await post(h.base, "/api/embed", { model: "nope", input: "x" })).status, 404);
    assert.equal((await post(h.base, "/api/embed", { model: "chat", input: 5 })).status, 400);
  });
});

describe("load failures", () => {
  test("a model that fails to load answers llama.cpp's reason, and the server stays up", async () => {
    const ctx = join(h.dir, "bad-ctx");
    await mkdir(ctx, { recursive: true });
    await writeLlamaGguf(join(ctx, "bad.gguf"), { ...TINY, extraMetadata: { "general.architecture": "no-such-arch" } });
    await writeFile(join(ctx, "Modelfile"), "FROM ./bad.gguf\n");
    await buildFromModelfile(join(ctx, "Modelfile"), { store: h.store, tags: [parseRef("broken")], contextDir: ctx, homeDir: h.dir });
    const r = await post(h.base, "/api/generate", { model: "broken", prompt: "hi", stream: false });
    assert.equal(r.status, 500);
    assert.match(r.json.error, /unknown model architecture: 'no-such-arch'/);
    const ok = await post(h.base, "/api/generate", { model: "chat", prompt: "hi", stream: false, options: { num_predict: 2, seed: 1 } });
    assert.equal(ok.status, 200);
  });
});

describe("guard", () => {
  test("only local Host names are served on loopback", async () => {
    const { request } = await import("node:http");
    const status = (host: string) =>
      new Promise<number>((res, rej) => {
        const u = new URL(h.base);
        const r = request({ host: u.hostname, port: u.port, path: "/api/version", headers: { host } }, (resp) => {
          resp.resume();
          res(resp.statusCode!);
        });
        r.on("error", rej);
        r.end();
      });
    assert.equal(await status("localhost:11434"), 200);
    assert.equal(await status("127.0.0.1"), 200);
    assert.equal(await status("my.internal"), 200);
    assert.equal(await status("evil.example.com"), 403);
  });

  test("CORS for Ollama's origins and MF_ORIGINS, 403 for others", async () => {
    const ok = await get("/api/version", { origin: "http://localhost:3000" });
    assert.equal(ok.headers.get("access-control-allow-origin"), "http://localhost:3000");
    const extra = await get("/api/version", { origin: "https://app.example.com" });
    assert.equal(extra.headers.get("access-control-allow-origin"), "https://app.example.com");
    const pre = await fetch(h.base + "/api/chat", { method: "OPTIONS", headers: { origin: "tauri://localhost", "access-control-request-method": "POST" } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.equal((await get("/api/version", { origin: "https://evil.example.com" })).status, 403);
  });
});
