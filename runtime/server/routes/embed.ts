/** `POST /api/embed` (L2-normalised, batched, truncating) and the legacy `POST /api/embeddings` (raw). */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import type { Lease } from "../../scheduler.js";
import { clientSignal } from "../http.js";
import { type RuntimeDeps, acquire, prepare } from "../infer.js";
import { embedSchema, embeddingsSchema } from "../schemas.js";

export function normalise(v: number[]): number[] {
  const n = Math.hypot(...v);
  return n > 0 ? v.map((x) => x / n) : v;
}

export async function embedOne(lease: Lease, text: string, truncate: boolean, signal: AbortSignal): Promise<{ vector: number[]; tokens: number }> {
  const m = lease.model;
  let tokens = m.tokenize(text, { special: true });
  if (m.bosToken !== null && tokens[0] !== m.bosToken) tokens = [m.bosToken, ...tokens];
  // the embedding context takes at most contextSize - 1 tokens
  if (tokens.length >= m.contextSize) {
    if (!truncate) throw new RuntimeError("BAD_REQUEST", "input exceeds maximum context length");
    tokens = tokens.slice(0, m.contextSize - 1);
  }
  return { vector: await m.embed(tokens, signal), tokens: tokens.length };
}

export function embedRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: { model: string; input?: string | string[]; truncate?: boolean; dimensions?: number; keep_alive?: string | number; options?: Record<string, unknown> } }>(
    "/api/embed",
    { schema: { body: embedSchema } },
    async (req, reply) => {
      const start = process.hrtime.bigint();
      const b = req.body;
      const inputs = b.input === undefined ? [] : Array.isArray(b.input) ? b.input : [b.input];
      const p = await prepare(deps, b);
      const signal = clientSignal(req, reply);
      const lease = await acquire(deps, p, b.model, signal);
      try {
        const embeddings: number[][] = [];
        let count = 0;
        for (const text of inputs) {
          const r = await embedOne(lease, text, b.truncate !== false, signal);
          let v = normalise(r.vector);
          if (b.dimensions && b.dimensions < v.length) v = normalise(v.slice(0, b.dimensions));
          embeddings.push(v);
          count += r.tokens;
        }
        return {
          model: b.model,
          embeddings,
          total_duration: Number(process.hrtime.bigint() - start),
          load_duration: lease.loadDuration,
          prompt_eval_count: count,
        };
      } finally {
        lease.release();
      }
    },
  );

  app.post<{ Body: { model: string; prompt?: string; keep_alive?: string | number; options?: Record<string, unknown> } }>(
    "/api/embeddings",
    { schema: { body: embeddingsSchema } },
    async (req, reply) => {
      const b = req.body;
      const p = await prepare(deps, b);
      const signal = clientSignal(req, reply);
      const lease = await acquire(deps, p, b.model, signal);
      try {
        if (!b.prompt) return { embedding: [] };
        return { embedding: (await embedOne(lease, b.prompt, true, signal)).vector };
      } finally {
        lease.release();
      }
    },
  );
}
