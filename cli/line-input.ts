/**
 * The lines of `mf run`'s chat. On a terminal, node's readline edits the line as a shell does (echo,
 * cursor keys, history with ↑/↓) and hands Ctrl-C to the chat instead of the process: while an answer
 * streams it cancels the answer, at a prompt it discards what was typed; Ctrl-D on an empty line ends
 * the input. Piped input is read line by line, and the prompts are still written.
 */
import { createInterface, type Interface } from "node:readline";

export type LineEvent = { kind: "line"; text: string } | { kind: "interrupt"; typed: boolean } | { kind: "end" };

export class LineInput {
  /** whether the line is edited here (stdin and stdout are both terminals) */
  readonly terminal: boolean;
  private readonly rl: Interface;
  private readonly output: NodeJS.WritableStream;
  /** lines that came while nobody was reading (piped input, or typed ahead during an answer) */
  private readonly queue: string[] = [];
  private ended = false;
  private waiting?: (e: LineEvent) => void;
  /** set while an answer streams: Ctrl-C cancels it */
  private cancel?: () => void;

  constructor(input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stdout) {
    this.terminal = Boolean(input.isTTY && output.isTTY);
    this.output = output;
    this.rl = createInterface({ input, output, terminal: this.terminal, historySize: 1000, removeHistoryDuplicates: true });
    this.rl.on("line", (text) => this.deliver({ kind: "line", text }));
    this.rl.on("close", () => {
      this.ended = true;
      this.deliver({ kind: "end" });
    });
    // on a terminal readline reads Ctrl-C as a key (raw mode) and emits this instead of a signal
    this.rl.on("SIGINT", () => this.interrupt());
  }

  /** The next line after writing `prompt`, an interrupt (Ctrl-C), or the end of the input. */
  read(prompt: string): Promise<LineEvent> {
    this.rl.setPrompt(prompt);
    const queued = this.queue.shift();
    if (queued !== undefined) {
      // on a terminal it was echoed where it was typed (maybe amid an answer): show it at its place
      this.output.write(this.terminal ? `${prompt}${queued}\n` : prompt);
      return Promise.resolve({ kind: "line", text: queued });
    }
    if (this.ended) return Promise.resolve({ kind: "end" });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.rl.prompt();
    });
  }

  /**
   * While an answer streams: Ctrl-C calls `cancel` (from readline on a terminal, or a SIGINT from a
   * cooked terminal or `kill -INT`). Returns what ends that.
   */
  cancellable(cancel: () => void): () => void {
    this.cancel = cancel;
    process.on("SIGINT", cancel);
    return () => {
      this.cancel = undefined;
      process.off("SIGINT", cancel);
    };
  }

  close(): void {
    this.rl.close();
  }

  private deliver(e: LineEvent): void {
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting(e);
    } else if (e.kind === "line") {
      this.queue.push(e.text);
    }
  }

  private interrupt(): void {
    if (this.cancel) return this.cancel();
    if (!this.waiting) return; // between prompts (a /show on its way): nothing to interrupt
    const typed = this.rl.line.length > 0;
    if (typed) {
      // discard the line: to its end, then delete back to its start (as Ctrl-E, Ctrl-U)
      this.rl.write(null, { ctrl: true, name: "e" });
      this.rl.write(null, { ctrl: true, name: "u" });
    }
    this.deliver({ kind: "interrupt", typed });
  }
}
