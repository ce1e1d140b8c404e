/**
 * Keeps the generating sequences of one context in step, so that each decode carries one token of every
 * sequence. node-llama-cpp decodes whatever is queued the moment a decode ends: once two groups of
 * sequences fall out of phase (a prompt evaluated alone, a client that joined later), one group samples
 * while the other decodes, and the context settles into alternating half-full batches (measured with 4
 * clients: 189 decodes of 2 tokens and 130 of 1 where 128 decodes of 4 would do). llama-server avoids
 * this by sampling every slot before the next decode; this barrier does the same for our sequences.
 *
 * A sequence joins after its first token (prompt evaluation is batched by node-llama-cpp itself and can
 * take seconds: nobody waits for it). Before asking for its next token it `arrive`s and waits until every
 * other member has arrived too, so that all of them queue their next token in the same turn of the event
 * loop. A member whose token is still being decoded or sampled is always waited for (that ends with the
 * decode in flight); a member whose consumer holds its token (a slow client) is waited for at most
 * `consumerGraceMs`, then the others go without it.
 */
type State = "pending" | "holding" | "arrived";

interface Member {
  state: State;
  /** when it entered "holding" (ms, performance.now()) */
  since: number;
}

export class StepBarrier {
  private readonly members = new Map<object, Member>();
  private waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly consumerGraceMs = 20) {}

  get size(): number {
    return this.members.size;
  }

  /** `key` received a token (joining on its first): its consumer holds it now. */
  received(key: object): void {
    const m = this.members.get(key);
    if (m) {
      m.state = "holding";
      m.since = performance.now();
    } else {
      this.members.set(key, { state: "holding", since: performance.now() });
    }
    this.check();
  }

  /** `key` wants its next token: resolves when the others are ready to ask for theirs as well. */
  arrive(key: object): Promise<void> {
    const m = this.members.get(key);
    if (!m) return Promise.resolve();
    m.state = "arrived";
    if (this.members.size === 1) {
      m.state = "pending";
      return Promise.resolve();
    }
    const p = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.check();
    return p;
  }

  /** `key` stopped generating (finished, cancelled or failed). */
  leave(key: object): void {
    if (this.members.delete(key)) this.check();
  }

  private check(): void {
    if (this.waiters.length === 0) return;
    const now = performance.now();
    let wakeAt = Infinity;
    for (const m of this.members.values()) {
      if (m.state === "arrived") continue;
      if (m.state === "pending") return; // its decode is in flight: it arrives when that ends
      const deadline = m.since + this.consumerGraceMs;
      if (deadline > now) wakeAt = Math.min(wakeAt, deadline);
    }
    if (wakeAt !== Infinity) {
      if (!this.timer) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.check();
        }, Math.max(1, Math.ceil(wakeAt - now)));
      }
      return;
    }
    this.release();
  }

  private release(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const m of this.members.values()) if (m.state === "arrived") m.state = "pending";
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }
}
