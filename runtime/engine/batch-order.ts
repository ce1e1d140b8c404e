/**
 * The order of the tokens in one decode batch. llama.cpp keeps a KV cache per sequence (node-llama-cpp
 * does not unify them) and then takes a batch in one piece only while the sequence ids ascend one by
 * one (0, 1, 2, 3); node-llama-cpp adds the waiting sequences in the order they asked, so a decode of 4
 * generating slots ran as two or three smaller ones (perf during 4 clients: 30% of the time in the
 * one-token matrix-vector product, which llama-server, adding its slots in id order, hardly uses).
 *
 * This strategy puts the waiting items in sequence-id order and shares the batch fairly: each gets up to
 * an equal part, what is left goes to the items in that order (to a prompt being evaluated). node-llama-cpp
 * hands a strategy only the items, built from its queue in order, so the ids are read from that queue
 * (an internal of the pinned 3.21.1; when it is not there, the order stays as given).
 */
import type { BatchItem, LlamaContext, PrioritizedBatchItem } from "node-llama-cpp";

interface QueuedDecodes {
  _queuedDecodes?: readonly { sequenceId: number }[];
}

export function inSequenceOrder(context: () => LlamaContext | undefined) {
  return ({ items, size }: { items: readonly BatchItem[]; size: number }): PrioritizedBatchItem[] => {
    const queue = (context() as unknown as QueuedDecodes | undefined)?._queuedDecodes;
    const ids = queue && queue.length === items.length ? queue.map((q) => q.sequenceId) : undefined;
    return shareBatch(items, size, ids);
  };
}

/** `items` ordered by `ids` (when given), each given tokens of a batch of `size`: fair shares, then the rest in order. */
export function shareBatch(items: readonly BatchItem[], size: number, ids?: readonly number[]): PrioritizedBatchItem[] {
  const order = items.map((item, i) => ({ item, id: ids?.[i] ?? i, processAmount: 0 }));
  order.sort((a, b) => a.id - b.id);
  const share = Math.max(1, Math.floor(size / Math.max(1, order.length)));
  let left = size;
  for (const o of order) {
    if (left <= 0) break;
    o.processAmount = Math.min(o.item.tokens.length, share, left);
    left -= o.processAmount;
  }
  for (const o of order) {
    if (left <= 0) break;
    const more = Math.min(o.item.tokens.length - o.processAmount, left);
    o.processAmount += more;
    left -= more;
  }
  return order.filter((o) => o.processAmount > 0).map(({ item, processAmount }) => ({ item, processAmount }));
}
