/**
 * The engine conformance suite: what the runtime relies on from any Engine. Run against node-llama-cpp
 * on the generated tiny model and against the fake engine.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isMfError } from "../../core/errors.js";
import { runGeneration } from "../../runtime/engine/generation.js";
import type { Engine, EngineModel, SamplingOptions } from "../../runtime/engine/types.js";

export interface EngineSuiteSetup {
  engine: Engine;
  modelPath: string;
  /** a path the engine must fail to load */
  badPath: string;
  /** words the failure must contain */
  badReason: RegExp;
}

const sampling = (seed: number): SamplingOptions => ({ temperature: 0.8, topK: 40, topP: 0.9, minP: 0, seed });

export function engineSuite(name: string, setup: () => Promise<EngineSuiteSetup>): void {
  describe(`engine conformance: ${name}`, { concurrency: false }, () => {
    let s: EngineSuiteSetup;
    let m: EngineModel;
    before(async () => {
      s = await setup();
      m = await s.engine.load({ modelPath: s.modelPath, adapters: [], contextSize: 256, slots: 2, threads: 1 });
    });
    after(async () => {
      await m?.dispose();
      await s?.engine.dispose();
    });

    test("a load gives the requested slots and at least the requested context", () => {
      assert.equal(m.slots, 2);
      assert.ok(m.vocabSize > 0);
      assert.ok(m.contextSize >= 256);
      assert.ok(m.sizeBytes > 0);
    });

    test("tokenize and detokenize round-trip text", () => {
      const text = "Hello world, ünïcödé!";
      const t = m.tokenize(text);
      assert.ok(t.length > 0);
      assert.equal(m.detokenize(t), text);
    });

    test("the same seed gives the same tokens; another seed other tokens", async () => {
      const take = async (seed: number) => {
        const out: number[] = [];
        for await (const t of m.evaluate(m.tokenize("once upon a time"), { sampling: { ...sampling(seed), temperature: 1.5 } })) {
          out.push(t);
          if (out.length === 24) break;
        }
        return out;
      };
      const a = await take(7);
      assert.ok(a.length > 0);
      assert.deepEqual(await take(7), a);
      assert.notDeepEqual(await take(8), a);
    });

    test("two slots evaluate at once; a third request finds none free", async () => {
      const p = m.tokenize("abc");
      const g1 = m.evaluate(p, { sampling: sampling(1) });
      const g2 = m.evaluate(p, { sampling: sampling(2) });
      await g1.next();
      await g2.next();
      const g3 = m.evaluate(p, { sampling: sampling(3) });
      await assert.rejects(g3.next(), (e) => isMfError(e));
      await g1.return();
      await g2.return();
      const g4 = m.evaluate(p, { sampling: sampling(4) });
      await g4.next();
      await g4.return();
    });

    test("runGeneration honours num_predict exactly and cuts at a stop string", async () => {
      const prompt = m.tokenize("the weather today is");
      let full = "";
      const r = await runGeneration(m, { prompt, maxTokens: 40, stop: [], sampling: { ...sampling(11), temperature: 1.5 } }, (t) => (full += t));
      assert.ok(r.evalCount > 0 && r.evalCount <= 40);
      if (r.doneReason === "length") assert.equal(r.evalCount, 40);
      assert.deepEqual(r.tokens.slice(0, prompt.length), prompt);
      assert.ok(r.promptEvalCount === prompt.length && r.evalDuration >= 0 && r.promptEvalDuration > 0);
      assert.ok(full.length >= 8, `enough text to pick a stop string from: ${JSON.stringify(full)}`);
      const stop = full.slice(5, 8);
      let cut = "";
      const r2 = await runGeneration(m, { prompt, maxTokens: 40, stop: [stop], sampling: { ...sampling(11), temperature: 1.5 } }, (t) => (cut += t));
      assert.equal(r2.doneReason, "stop");
      assert.equal(cut, full.slice(0, full.indexOf(stop)));
    });

    test("a JSON grammar yields text that parses", async () => {
      let text = "";
      await runGeneration(m, { prompt: m.tokenize("{"), maxTokens: 200, stop: [], sampling: sampling(3), grammar: { kind: "json" } }, (t) => (text += t));
      assert.doesNotThrow(() => JSON.parse(text), text);
    });

    test("embeddings have a fixed dimension and are deterministic", async () => {
      const a = await m.embed(m.tokenize("hello"));
      const b = await m.embed(m.tokenize("a different text"));
      assert.ok(a.length > 0);
      assert.equal(a.length, b.length);
      assert.deepEqual(await m.embed(m.tokenize("hello")), a);
    });

    test("a model unloaded during a generation makes it throw, never end as if complete", async () => {
      const other = await s.engine.load({ modelPath: s.modelPath, adapters: [], contextSize: 256, slots: 1, threads: 1 });
      const gen = other.evaluate(other.tokenize("once upon a time"), { sampling: { ...sampling(4), temperature: 1.5 } });
      assert.equal(typeof (await gen.next()).value, "number");
      const unloading = other.dispose();
      await assert.rejects(
        (async () => {
          for (let r = await gen.next(); !r.done; r = await gen.next());
        })(),
        (e) => isMfError(e) && e.code === "SERVICE_UNAVAILABLE" && /unloaded before the answer was complete/.test(e.message),
      );
      await unloading;
    });

    test("a failed load reports the engine's reason", async () => {
      await assert.rejects(
        s.engine.load({ modelPath: s.badPath, adapters: [], contextSize: 128, slots: 1, threads: 1 }),
        (e) => isMfError(e) && e.code === "MODEL_LOAD_FAILED" && s.badReason.test(e.message),
      );
    });
  });
}
