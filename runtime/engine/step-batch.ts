/**
 * One generation step of several sequences in one call: the tokens that the generating slots of a context
 * ask to have decoded within one turn of the event loop go to the engine together, in sequence-id order
 * (see batch-order.ts for why that order), and each gets the token sampled after it. The step barrier
 * (step-barrier.ts) makes the slots ask in the same turn; this collects what they ask.
 *
 * This is mf's own generation loop, beside node-llama-cpp's batch queue: one call a step, not one queued
 * decode, one lock and a chain of promises a token. Measured on 2 cores with 4 slots generating together,
 * the JavaScript thread spent 0.26 ms a token in node-llama-cpp's queue and 0.11–0.15 ms with this.
 */
export interface StepItem {
  /** the sequence's id in its context: the batch goes in this order */
  readonly order: number;
}

export class StepBatch<I extends StepItem> {
  private waiting: { item: I; resolve: (token: number) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  /** `run` decodes one token of each item's sequence in one batch and resolves to the next of each, in order */
  constructor(private readonly run: (items: I[]) => Promise<readonly number[]>) {}

  /** Resolves to the token sampled after `item`'s, once the step that took it has run. */
  step(item: I): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // the others released by the same barrier ask within this turn: they go in this step too
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.waiting.sort((a, b) => a.item.order - b.item.order);
    this.waiting = [];
    if (batch.length === 0) return;
    let ran: Promise<readonly number[]>;
    try {
      ran = this.run(batch.map((w) => w.item));
    } catch (e) {
      ran = Promise.reject(e);
    }
    ran.then(
      (tokens) => {
        for (let i = 0; i < batch.length; i++) {
          const t = tokens[i];
          if (t === undefined) batch[i]!.reject(new Error("the step returned no token for a sequence"));
          else batch[i]!.resolve(t);
        }
      },
      (e: unknown) => {
        for (const w of batch) w.reject(e);
      },
    );
  }
}
