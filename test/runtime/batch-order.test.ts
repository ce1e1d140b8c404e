/** The decode batch order: sequence ids ascending (llama.cpp takes such a batch in one piece), fair shares. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { getLlama, LlamaLogLevel, type BatchItem, type LlamaContext, type Token } from "node-llama-cpp";
import { inSequenceOrder, shareBatch } from "../../runtime/engine/batch-order.js";
import { tinyGguf } from "./harness.js";

const item = (n: number): BatchItem => ({ tokens: Array.from({ length: n }, (_, i) => i) as never, logits: [], evaluationPriority: 5 });

describe("decode batch order", () => {
  test("one token of each generating sequence, in ascending sequence id whatever order they asked in", () => {
    const items = [item(1), item(1), item(1), item(1)];
    const out = shareBatch(items, 512, [2, 0, 3, 1]);
    assert.deepEqual(out.map((o) => items.indexOf(o.item)), [1, 3, 0, 2]);
    assert.deepEqual(out.map((o) => o.processAmount), [1, 1, 1, 1]);
  });

  test("a prompt shares the batch with generating sequences and takes what they leave", () => {
    const items = [item(1), item(900), item(1)];
    const out = shareBatch(items, 512, [3, 1, 0]);
    assert.deepEqual(out.map((o) => [items.indexOf(o.item), o.processAmount]), [[2, 1], [1, 510], [0, 1]]);
  });

  test("two prompts longer than the batch get equal parts of it", () => {
    const items = [item(1000), item(1000)];
    const out = shareBatch(items, 512, [1, 0]);
    assert.deepEqual(out.map((o) => [items.indexOf(o.item), o.processAmount]), [[1, 256], [0, 256]]);
  });

  test("more waiting sequences than batch slots: the lowest ids go now, the others wait for the next decode", () => {
    const items = [item(1), item(1), item(1)];
    const out = shareBatch(items, 2, [5, 4, 6]);
    assert.deepEqual(out.map((o) => items.indexOf(o.item)), [1, 0]);
  });

  test("without ids the order stays as given", () => {
    const items = [item(3), item(2)];
    assert.deepEqual(shareBatch(items, 512).map((o) => [items.indexOf(o.item), o.processAmount]), [[0, 3], [1, 2]]);
  });

  test("on node-llama-cpp (pinned 3.21.1) the strategy reads the waiting sequences' ids and batches them in order", async () => {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: await tinyGguf() });
    let ctx: LlamaContext | undefined;
    const seen: number[][] = [];
    const strategy = inSequenceOrder(() => ctx);
    try {
      ctx = await model.createContext({
        contextSize: 512,
        sequences: 3,
        threads: 1,
        batching: {
          itemPrioritizationStrategy: (o) => {
            const ids = (ctx as unknown as { _queuedDecodes: { sequenceId: number }[] })._queuedDecodes.map((q) => q.sequenceId);
            const out = strategy(o);
            seen.push(out.map((p) => ids[o.items.indexOf(p.item)]!));
            return out;
          },
        },
      });
      const seqs = [ctx.getSequence(), ctx.getSequence(), ctx.getSequence()];
      const prompt = model.tokenize("Once upon a time") as Token[];
      // the last sequence asks first
      await Promise.all([...seqs].reverse().map(async (seq) => {
        let n = 0;
        for await (const _ of seq.evaluate(prompt, { temperature: 0 })) if (++n === 4) break;
      }));
      const several = seen.filter((ids) => ids.length > 1);
      assert.ok(several.length > 0, "some decodes carried several sequences");
      for (const ids of several) assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `batch order ${ids}`);
      assert.ok(several.some((ids) => ids.length === 3 && ids[0] === 0), `the three prompts went in together, in id order: ${JSON.stringify(seen)}`);
    } finally {
      await ctx?.dispose();
      await model.dispose();
      await llama.dispose();
    }
  });
});
