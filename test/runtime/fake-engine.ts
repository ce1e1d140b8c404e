/**
 * A fake engine for scheduler tests: bytes are tokens, output is a seeded stream of letters, loads and
 * tokens can be slowed down, and every load and dispose is recorded. It passes the engine suite too.
 */
import { RuntimeError } from "../../core/errors.js";
import { type Engine, type EngineModel, type EvaluateOptions, type LoadSpec, unloadedError } from "../../runtime/engine/types.js";

export interface FakeEngineOptions {
  loadMs?: number;
  tokenMs?: number;
  /** paths whose load fails */
  failPaths?: string[];
}

export class FakeEngine implements Engine {
  readonly name = "fake";
  readonly events: string[] = [];
  loadedNow = 0;

  constructor(private readonly opts: FakeEngineOptions = {}) {}

  async load(spec: LoadSpec): Promise<EngineModel> {
    this.events.push(`load ${spec.modelPath}`);
    if (this.opts.loadMs) await new Promise((r) => setTimeout(r, this.opts.loadMs));
    if (this.opts.failPaths?.includes(spec.modelPath) || spec.modelPath.includes("missing")) {
      throw new RuntimeError("MODEL_LOAD_FAILED", `failed to load model ${spec.modelPath}: fake failure`);
    }
    this.loadedNow++;
    return new FakeModel(spec, this.opts, () => {
      this.loadedNow--;
      this.events.push(`unload ${spec.modelPath}`);
    });
  }

  async dispose(): Promise<void> {}
}

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

class FakeModel implements EngineModel {
  readonly contextSize: number;
  readonly slots: number;
  readonly sizeBytes = 1000;
  readonly vramBytes = 0;
  readonly threads: number;
  readonly threadsAsked: number | undefined;
  readonly bosToken = null;
  readonly vocabSize = 256;
  readonly chatTemplate = undefined;
  busy = 0;
  private disposed = false;

  constructor(spec: LoadSpec, private readonly opts: FakeEngineOptions, private readonly onDispose: () => void) {
    this.contextSize = spec.contextSize;
    this.slots = spec.slots;
    this.threads = spec.threads ?? 1;
    this.threadsAsked = spec.threads;
  }

  applyChatTemplate(): string | undefined {
    return undefined;
  }

  tokenize(text: string): number[] {
    return [...Buffer.from(text, "utf8")];
  }

  detokenize(tokens: readonly number[]): string {
    return Buffer.from(tokens as number[]).toString("utf8");
  }

  async *evaluate(prompt: readonly number[], opts: EvaluateOptions): AsyncGenerator<number, void, void> {
    if (this.disposed) throw new RuntimeError("INTERNAL", "model is unloaded");
    if (this.busy >= this.slots) throw new RuntimeError("SERVICE_UNAVAILABLE", "no free slot on this model");
    if (prompt.length >= this.contextSize) throw new RuntimeError("BAD_REQUEST", "prompt does not fit");
    this.busy++;
    try {
      if (opts.grammar) {
        for (const b of Buffer.from('{"fake": true}')) yield b;
        return;
      }
      const next = rng(opts.sampling.seed + prompt.reduce((a, b) => (a * 31 + b) >>> 0, 7));
      for (;;) {
        if (this.opts.tokenMs) await new Promise((r) => setTimeout(r, this.opts.tokenMs));
        else await Promise.resolve();
        if (this.disposed) throw unloadedError();
        yield 97 + Math.floor(next() * 26);
      }
    } finally {
      this.busy--;
    }
  }

  async embed(tokens: readonly number[]): Promise<number[]> {
    const next = rng(tokens.reduce((a, b) => (a * 31 + b) >>> 0, 7));
    return Array.from({ length: 8 }, () => next() * 2 - 1);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.onDispose();
  }
}
