/**
 * Serving under load, on the real engine: parallel slots, the fair queue, 503 past the queue limit, and
 * a client disconnect stopping its generation and freeing its slot, a slow consumer not holding back the
 * other slot.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import type { Engine, EngineModel, EvaluateOptions } from "../../runtime/engine/types.js";
import { type Harness, post, startHarness } from "./harness.js";

/** The real engine, counting the tokens it yields; `slowNextMs` makes the next generation's consumer slow. */
class CountingEngine implements Engine {
  readonly name = "counting";
  yielded = 0;
  closed = 0;
  /** the next generation to start holds each token this long before asking for the next one */
  slowNextMs = 0;
  /** tokens yielded by that slow generation */
  slowYielded = 0;
  private readonly inner = createLlamaEngine({ threads: 1 });

  async load(spec: Parameters<Engine["load"]>[0]): Promise<EngineModel> {
    const m = await this.inner.load(spec);
    const self = this;
    return Object.assign(Object.create(m) as EngineModel, {
      async *evaluate(prompt: readonly number[], opts: EvaluateOptions) {
        const holdMs = self.slowNextMs;
        self.slowNextMs = 0;
        try {
          for await (const t of m.evaluate(prompt, opts)) {
            self.yielded++;
            if (holdMs) self.slowYielded++;
            if (holdMs) await new Promise((r) => setTimeout(r, holdMs));
            yield t;
          }
        } finally {
          self.closed++;
        }
      },
      tokenize: m.tokenize.bind(m),
      detokenize: m.detokenize.bind(m),
      embed: m.embed.bind(m),
      dispose: m.dispose.bind(m),
    });
  }

  dispose(): Promise<void> {
    return this.inner.dispose();
  }
}

const engine = new CountingEngine();
let h: Harness;
before(async () => {
  h = await startHarness({ engine, scheduler: { numParallel: 2, maxQueue: 2 } });
});
after(async () => h?.close());

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

const gen = (seed: number, n: number, init: RequestInit = {}) =>
  post(h.base, "/api/generate", { model: "raw", prompt: `request ${seed}`, stream: false, options: { seed, num_predict: n, temperature: 1.5, top_k: 0, top_p: 1 } }, init);

describe("serving", { concurrency: false }, () => {
  test("two requests run in parallel on the two slots of one loaded model", async () => {
    const [a, b] = await Promise.all([gen(1, 20), gen(2, 20)]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.equal(a.json.eval_count, 20);
    assert.equal(b.json.eval_count, 20);
    const held = await h.hold("raw");
    // one slot taken: a request still runs on the other
    assert.equal((await gen(3, 5)).json.eval_count, 5);
    held.release();
    const ps = ((await (await fetch(h.base + "/api/ps")).json()) as { models: unknown[] }).models;
    assert.equal(ps.length, 1, "one model, loaded once");
  });

  test("with every slot taken requests queue in order, and past the queue limit get 503", async () => {
    const l1 = await h.hold("raw");
    const l2 = await h.hold("raw");
    const order: number[] = [];
    const q1 = gen(4, 3).then((r) => (order.push(1), r));
    await until(() => h.scheduler.queued === 1);
    const q2 = gen(5, 3).then((r) => (order.push(2), r));
    await until(() => h.scheduler.queued === 2);
    const over = await gen(6, 3);
    assert.equal(over.status, 503);
    assert.match(over.json.error, /server busy/);
    l1.release();
    assert.equal((await q1).status, 200);
    l2.release();
    assert.equal((await q2).status, 200);
    assert.deepEqual(order, [1, 2]);
  });

  test("a queued client that disconnects leaves the queue", async () => {
    const l1 = await h.hold("raw");
    const l2 = await h.hold("raw");
    const ac = new AbortController();
    const gone = gen(7, 3, { signal: ac.signal }).catch((e: Error) => e);
    await until(() => h.scheduler.queued === 1);
    ac.abort();
    await until(() => h.scheduler.queued === 0);
    assert.equal(((await gone) as Error).name, "AbortError");
    l1.release();
    l2.release();
  });

  test("a client that disconnects mid-stream stops its generation and frees its slot", async () => {
    engine.slowNextMs = 10;
    try {
      const closedBefore = engine.closed;
      const ac = new AbortController();
      const res = await fetch(h.base + "/api/generate", {
        method: "POST",
        body: JSON.stringify({ model: "raw", prompt: "go on forever", options: { seed: 1, num_predict: -1, temperature: 1.5, top_k: 0, top_p: 1 } }),
        signal: ac.signal,
      });
      const reader = res.body!.getReader();
      await reader.read();
      const yieldedAtAbort = engine.yielded;
      ac.abort();
      await until(() => engine.closed > closedBefore);
      assert.ok(engine.yielded - yieldedAtAbort < 50, `stopped after ${engine.yielded - yieldedAtAbort} more tokens, not at the context's end (~240)`);
      await until(() => h.scheduler.loaded().every((m) => m.active === 0));
    } finally {
      engine.slowNextMs = 0;
    }
    // both slots are usable again
    const [a, b] = await Promise.all([gen(8, 4), gen(9, 4)]);
    assert.equal(a.json.eval_count + b.json.eval_count, 8);
  });

  test("a generation whose consumer is slow does not hold back the other slot's (the decode step waits only briefly)", async () => {
    engine.slowNextMs = 100;
    engine.slowYielded = 0;
    const ac = new AbortController();
    const slow = gen(10, 200, { signal: ac.signal }).catch((e: Error) => e);
    try {
      await until(() => engine.slowYielded >= 1);
      const fast = await gen(11, 10);
      assert.equal(fast.status, 200);
      assert.equal(fast.json.eval_count, 10);
      // in lockstep the fast one would have waited ~100 ms for the slow one at each of its 10 tokens
      assert.ok(engine.slowYielded < 8, `the slow generation had yielded ${engine.slowYielded} tokens when the fast one's 10 were done`);
    } finally {
      ac.abort();
      await slow;
      await until(() => h.scheduler.loaded().every((m) => m.active === 0));
    }
  });
});
