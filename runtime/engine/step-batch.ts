/**
 * One generation step of several sequences in one call: the tokens that the generating slots of a context
 * ask to have decoded within one turn of the event loop go to the engine together, in sequence-id order
 * (see batch-order.ts for why that order), and each gets the token sampled after it. The step barrier
 * (step-barrier.ts) makes the slots ask in the same turn; this collects what they ask.
 *
 * This is mf's own generation loop, beside node-llama-cpp's batch queue: one call a step, not one queued
 * decode, one lock and a chain of promises a token. Measured on 2 cores, 4 slots generating together: a
 * loop of node-llama-cpp's calls alone spent 0.20–0.29 ms of the JavaScript thread a token through the
 * queue and 0.08–0.15 ms stepping; `mf serve` streaming to 4 clients, 0.33–0.40 ms before, 0.27–0.31 after.
 */
export interface StepItem {
  /** the sequence's id in its context: the batch goes in this order */
  readonly order: number;
  /** the tokens it decodes (1 while generating; more for the end of a prompt) */
  readonly size: number;
}

export class StepBatch<I extends StepItem> {
  private waiting: { item: I; resolve: (token: number) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;

  /**
   * `run` decodes each item's tokens in one batch and resolves to the token sampled after each, in order;
   * a step carries at most `capacity` tokens (the context's batch size), the items that do not fit go in
   * the next one
   */
  constructor(
    private readonly run: (items: I[]) => Promise<readonly number[]>,
    private readonly capacity = Infinity,
  ) {}

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
    this.waiting.sort((a, b) => a.item.order - b.item.order);
    let size = 0;
    let n = 0;
    while (n < this.waiting.length && (n === 0 || size + this.waiting[n]!.item.size <= this.capacity)) size += this.waiting[n++]!.item.size;
    const batch = this.waiting.splice(0, n);
    if (this.waiting.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
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
