/**
 * Prometheus metrics of `mf serve` (`GET /metrics`, issue 17): off by default; the runtime server with an
 * injected prom-client Registry on the real engine and the tiny generated GGUF, then the real `mf serve`
 * binary with `--metrics-addr` and with MF_METRICS. Generations through the native, streaming and OpenAI
 * APIs must move the token counters by exactly the counts the answers report; the queue depth and the
 * loaded models go up and back down; no model name appears in the scrape.
 */
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { createRuntimeMetrics } from "../../runtime/server/metrics.js";
import { type ServingMf, mfEnv, serveMf } from "../helpers/mf.js";
import { type Scrape, scrape, settledScrape } from "../helpers/prom.js";
import { buildTinyImages, type Harness, post, startHarness } from "./harness.js";

const REQ = "mf_serve_http_requests_total";
const IN_FLIGHT = "mf_serve_http_requests_in_flight";
const PROMPT = "mf_serve_prompt_tokens_total";
const GENERATED = "mf_serve_generated_tokens_total";
const TTFT = "mf_serve_time_to_first_token_seconds_count";
const RATE = "mf_serve_tokens_per_second_count";

const delta = (a: Scrape, b: Scrape, name: string, labels: Record<string, string> = {}) => b.value(name, labels) - a.value(name, labels);

/** No model name in any label value or line of the scrape. */
function assertNoModelNames(s: Scrape, ...names: string[]): void {
  for (const n of names) assert.ok(!s.text.includes(n), `the scrape names ${n}`);
  for (const sample of s.samples) assert.ok(!("model" in sample.labels), `a model label on ${sample.name}`);
}

describe("mf serve metrics", () => {
  it("are off unless asked for: GET /metrics is a 404", async () => {
    const h = await startHarness();
    try {
      const r = await fetch(`${h.base}/metrics`);
      assert.equal(r.status, 404);
      assert.match(((await r.json()) as { error: string }).error, /404 page not found/);
    } finally {
      await h.close();
    }
  });

  describe("on the API's address (the server with the real engine)", () => {
    let h: Harness;
    before(async () => {
      h = await startHarness({ metrics: createRuntimeMetrics(new Registry()), serveMetrics: true });
    });
    after(() => h?.close());
    const scrapeNow = () => settledScrape(`${h.base}/metrics`, IN_FLIGHT, 1);

    it("a generation moves the token counters by its own counts, with a time to first token and a rate", async () => {
      const s0 = await scrapeNow();
      assert.equal(s0.value("mf_serve_models_loaded"), 0);
      const r = await post(h.base, "/api/generate", { model: "chat", prompt: "count with me", stream: false, options: { num_predict: 6, temperature: 0, seed: 1 } });
      assert.equal(r.status, 200, r.text);
      const s1 = await scrapeNow();
      assert.ok(r.json.eval_count >= 2, r.text);
      assert.equal(delta(s0, s1, PROMPT), r.json.prompt_eval_count);
      assert.equal(delta(s0, s1, GENERATED), r.json.eval_count);
      assert.equal(delta(s0, s1, TTFT), 1);
      assert.equal(delta(s0, s1, RATE), 1);
      assert.ok(s1.value("mf_serve_time_to_first_token_seconds_sum") > 0);
      assert.equal(delta(s0, s1, REQ, { method: "POST", route: "/api/generate", status: "200" }), 1);
      assert.equal(delta(s0, s1, "mf_serve_http_request_duration_seconds_count", { method: "POST", route: "/api/generate" }), 1);
      assert.equal(s1.value("mf_serve_models_loaded"), 1);
      assertNoModelNames(s1, "chat:latest", "count with me");
    });

    it("streamed chat and the OpenAI API count the same way", async () => {
      const s0 = await scrapeNow();
      const chat = await post(h.base, "/api/chat", { model: "chat", messages: [{ role: "user", content: "hello" }], options: { num_predict: 5, temperature: 0, seed: 2 } });
      assert.equal(chat.status, 200, chat.text);
      const last = chat.lines.at(-1);
      assert.equal(last.done, true);
      const oai = await post(h.base, "/v1/chat/completions", { model: "chat", messages: [{ role: "user", content: "hi there" }], max_tokens: 4, temperature: 0, seed: 3 });
      assert.equal(oai.status, 200, oai.text);
      const s1 = await scrapeNow();
      assert.equal(delta(s0, s1, PROMPT), last.prompt_eval_count + oai.json.usage.prompt_tokens);
      assert.equal(delta(s0, s1, GENERATED), last.eval_count + oai.json.usage.completion_tokens);
      assert.equal(delta(s0, s1, TTFT), 2);
      assert.equal(delta(s0, s1, REQ, { method: "POST", route: "/api/chat", status: "200" }), 1);
      assert.equal(delta(s0, s1, REQ, { method: "POST", route: "/v1/chat/completions", status: "200" }), 1);
    });

    it("the queue depth goes up while both slots are held, and back down", async () => {
      const held = [await h.hold("chat"), await h.hold("chat")];
      const s0 = await scrapeNow();
      assert.equal(s0.value("mf_serve_queue_depth"), 0);
      const waiting = post(h.base, "/api/generate", { model: "chat", prompt: "wait", stream: false, options: { num_predict: 2 } });
      let s1 = await scrape(`${h.base}/metrics`);
      for (let i = 0; s1.value("mf_serve_queue_depth") === 0; i++) {
        assert.ok(i < 1000, "the request never queued");
        await new Promise((r) => setTimeout(r, 10));
        s1 = await scrape(`${h.base}/metrics`);
      }
      assert.equal(s1.value("mf_serve_queue_depth"), 1);
      assert.equal(s1.value(IN_FLIGHT), 2, "the waiting request and the scrape");
      for (const l of held) l.release();
      assert.equal((await waiting).status, 200);
      const s2 = await scrapeNow();
      assert.equal(s2.value("mf_serve_queue_depth"), 0);
    });

    it("models loaded go back down when a model is unloaded; unknown paths get one label", async () => {
      const unload = await post(h.base, "/api/generate", { model: "chat", keep_alive: 0 });
      assert.equal(unload.status, 200, unload.text);
      for (const p of ["/nowhere", "/api/chat/extra", "/v1/unknown"]) assert.equal((await fetch(`${h.base}${p}`)).status, 404);
      const s = await scrapeNow();
      assert.equal(s.value("mf_serve_models_loaded"), 0);
      assert.equal(s.value(REQ, { route: "unmatched", status: "404" }), 3);
      assertNoModelNames(s, "chat:latest", "nowhere", "extra");
    });
  });

  describe("the mf serve binary", () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    const servers: ServingMf[] = [];
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "mf-serve-metrics-"));
      await buildTinyImages(dir, { "secret-model": "FROM ./tiny.gguf\nPARAMETER num_ctx 256\n" });
      env = mfEnv({ HOME: dir, MF_HOME: join(dir, "home"), MF_MODELS: join(dir, "models"), MF_THREADS: "1" });
      delete env.MF_METRICS;
      delete env.MF_METRICS_ADDR;
    });
    after(async () => {
      for (const s of servers) await s.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it("--metrics-addr serves them on their own address only; a generation moves them", async () => {
      const s = await serveMf(["--no-gpu", "--metrics-addr", "127.0.0.1:0"], env);
      servers.push(s);
      const at = /metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(s.output())?.[1];
      assert.ok(at, s.output());
      assert.equal((await fetch(`${s.base}/metrics`)).status, 404);
      assert.equal((await fetch(at.replace(/\/metrics$/, "/api/tags"))).status, 404, "the metrics address serves nothing else");
      const s0 = await settledScrape(at, IN_FLIGHT, 0);
      const r = await post(s.base, "/api/generate", { model: "secret-model", prompt: "hi", stream: false, options: { num_predict: 3, temperature: 0 } });
      assert.equal(r.status, 200, r.text);
      const s1 = await settledScrape(at, IN_FLIGHT, 0);
      assert.equal(delta(s0, s1, GENERATED), r.json.eval_count);
      assert.equal(delta(s0, s1, PROMPT), r.json.prompt_eval_count);
      assert.equal(delta(s0, s1, REQ, { method: "POST", route: "/api/generate", status: "200" }), 1);
      assert.equal(s1.value("mf_serve_models_loaded"), 1);
      assert.ok(s1.has("process_resident_memory_bytes"), "the process's own metrics are there");
      assertNoModelNames(s1, "secret-model");
    });

    it("MF_METRICS=1 serves them on the API's address", async () => {
      const s = await serveMf(["--no-gpu"], { ...env, MF_METRICS: "1" });
      servers.push(s);
      assert.match(s.output(), new RegExp(`metrics at ${s.base}/metrics`));
      const m = await scrape(`${s.base}/metrics`);
      assert.equal(m.value("mf_serve_queue_depth"), 0);
      assert.ok(m.has(GENERATED));
    });
  });
});
