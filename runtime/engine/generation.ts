/**
 * One generation over any engine: streams text as it becomes valid UTF-8, holds back what could be the
 * start of a stop string, ends on a stop string, `num_predict`, a full context or an end-of-generation
 * token, and measures what Ollama reports (counts and nanosecond durations).
 */
import type { EngineModel, GrammarSpec, SamplingOptions, TokenProbability } from "./types.js";

export interface GenerationRequest {
  /** the whole prompt, already tokenized and fitted to the context */
  prompt: number[];
  /** num_predict: a positive limit, or < 0 for "until the context is full" */
  maxTokens: number;
  stop: string[];
  sampling: SamplingOptions;
  grammar?: GrammarSpec;
  /** each generated token's log-probability and its `top` alternatives, as text (see TokenProbability) */
  logprobs?: { top: number; sink: (e: LogprobEntry) => void };
}

/** A token's log-probability as the APIs report it (Ollama's and OpenAI's shape). */
export interface LogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface GenerationResult {
  doneReason: "stop" | "length";
  /** the stop string that ended the answer, when one did (not the end-of-generation token) */
  stopSequence?: string;
  /** prompt plus generated tokens: Ollama's `context` */
  tokens: number[];
  promptEvalCount: number;
  promptEvalDuration: number;
  evalCount: number;
  evalDuration: number;
}

export class AbortedError extends Error {
  constructor() {
    super("generation cancelled");
    this.name = "AbortError";
  }
}

/** The longest suffix of `text` that is a proper prefix of a stop string. */
function heldBack(text: string, stops: readonly string[]): number {
  let keep = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > keep; n--) {
      if (text.endsWith(s.slice(0, n))) {
        keep = n;
        break;
      }
    }
  }
  return keep;
}

const nsSince = (t: bigint) => Number(process.hrtime.bigint() - t);

export async function runGeneration(
  model: EngineModel,
  req: GenerationRequest,
  onText: (text: string) => void,
  signal?: AbortSignal,
): Promise<GenerationResult> {
  const stops = req.stop.filter((s) => s.length > 0);
  const generated: number[] = [];
  let pending: number[] = [];
  let held = "";
  let doneReason: "stop" | "length" = "stop";
  let stopSequence: string | undefined;
  const room = model.contextSize - req.prompt.length;
  const limit = req.maxTokens > 0 ? Math.min(req.maxTokens, room) : room;

  const start = process.hrtime.bigint();
  let firstAt: bigint | undefined;
  const tokenText = (t: number): { token: string; bytes: number[] } => {
    const s = model.detokenize([t], { special: true });
    return { token: s, bytes: [...Buffer.from(s, "utf8")] };
  };
  const lp = req.logprobs;
  const probabilities = lp
    ? {
        top: lp.top,
        sink: (p: TokenProbability) =>
          lp.sink({ ...tokenText(p.token), logprob: p.logprob, top_logprobs: p.top.map((x) => ({ ...tokenText(x.token), logprob: x.logprob })) }),
      }
    : undefined;
  const gen = model.evaluate(req.prompt, { sampling: req.sampling, grammar: req.grammar, probabilities, maxTokens: limit });
  let stopped = false;
  try {
    while (!stopped) {
      if (signal?.aborted) throw new AbortedError();
      const r = await gen.next();
      if (r.done) break;
      firstAt ??= process.hrtime.bigint();
      generated.push(r.value);
      pending.push(r.value);
      const previous = generated.slice(Math.max(0, generated.length - pending.length - 4), generated.length - pending.length);
      const text = model.detokenize(pending, { special: true, previous });
      const atLimit = generated.length >= limit;
      if (!text.endsWith("\uFFFD") || pending.length >= 4 || atLimit) {
        pending = [];
        held += text;
        const cut = stops.reduce((at, s) => {
          const i = held.indexOf(s);
          return i >= 0 && (at < 0 || i < at) ? i : at;
        }, -1);
        if (cut >= 0) {
          stopSequence = stops.filter((s) => held.indexOf(s) === cut).sort((a, b) => b.length - a.length)[0];
          if (cut > 0) onText(held.slice(0, cut));
          held = "";
          stopped = true;
          break;
        }
        const keep = heldBack(held, stops);
        if (held.length > keep) {
          onText(held.slice(0, held.length - keep));
          held = held.slice(held.length - keep);
        }
      }
      if (atLimit) {
        doneReason = "length";
        break;
      }
    }
  } finally {
    await gen.return();
  }
  if (signal?.aborted) throw new AbortedError();
  if (pending.length) held += model.detokenize(pending, { special: true });
  if (held) onText(held);
  const end = process.hrtime.bigint();
  return {
    doneReason,
    stopSequence,
    tokens: [...req.prompt, ...generated],
    promptEvalCount: req.prompt.length,
    promptEvalDuration: Number((firstAt ?? end) - start),
    evalCount: generated.length,
    evalDuration: firstAt ? nsSince(firstAt) : 0,
  };
}
