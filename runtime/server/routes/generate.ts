/** `POST /api/generate`: a completion of a prompt (compat.md §5), `_debug_render_only` included. */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import { renderGeneratePromptAsync } from "../../prompt/index.js";
import { fitPrompt } from "../../options.js";
import { NdjsonStream, clientSignal, createdAt } from "../http.js";
import { type RuntimeDeps, acquire, generate, ggufTemplate, loadOrUnload, needsGgufTemplate, prepare, promptTokens, stats } from "../infer.js";
import type { Lease } from "../../scheduler.js";
import { imagePrompt, requireCapability } from "../models.js";
import { type GenerateBody, generateSchema } from "../schemas.js";

export const IMAGES_UNSUPPORTED = "images are not supported: mf's engine (node-llama-cpp 3.x) has no vision support";

export function generateRoute(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: GenerateBody }>("/api/generate", { schema: { body: generateSchema } }, async (req, reply) => {
    const start = process.hrtime.bigint();
    const b = req.body;
    if (b.images?.length) throw new RuntimeError("BAD_REQUEST", IMAGES_UNSUPPORTED);
    if (b.raw && (b.template || b.system || b.context?.length)) {
      throw new RuntimeError("BAD_REQUEST", "raw mode does not support template, system, or context");
    }
    const p = await prepare(deps, b);
    // a template without `.Suffix` would silently drop the prompt: Ollama refuses instead
    if (b.suffix) requireCapability(b.model, b.template || p.d.template, "insert");
    const signal = clientSignal(req, reply);
    const prompt = b.prompt ?? "";
    const head = () => ({ model: b.model, created_at: createdAt() });

    // rendered in slices: a template that loops until its budget is spent leaves the server responsive
    const render = (lease?: Lease) =>
      renderGeneratePromptAsync(
        imagePrompt(p.d),
        { prompt, suffix: b.suffix, system: b.system, template: b.template, raw: b.raw, think: b.think, hasContext: !!b.context?.length },
        { cache: deps.templates, ggufTemplate: ggufTemplate(lease), budget: deps.templateBudget() },
      );
    // without a template the GGUF's own chat template renders the prompt: that needs the loaded model
    const needsModel = !b.raw && !b.suffix && needsGgufTemplate(p, b.template);

    if (b._debug_render_only) {
      const lease = needsModel ? await acquire(deps, p, b.model, signal) : undefined;
      try {
        const r = await render(lease);
        return { ...head(), response: "", done: true, _debug_info: { rendered_template: r.prompt, image_count: r.images.length } };
      } finally {
        lease?.release();
      }
    }
    if (prompt === "" && !b.suffix) {
      const reason = await loadOrUnload(deps, p, b.model, signal);
      return { ...head(), response: "", done: true, done_reason: reason };
    }

    const early = needsModel ? undefined : await render();
    const lease = await acquire(deps, p, b.model, signal);
    try {
      const rendered = early ?? (await render(lease));
      const tokens = fitPrompt(promptTokens(lease, rendered.prompt, b.context), lease.model.contextSize, p.run.numKeep);
      const stream = b.stream !== false;
      const out = stream ? new NdjsonStream(reply) : undefined;
      let text = "";
      try {
        const r = await generate(lease, p, tokens, (t) => (out ? out.write({ ...head(), response: t, done: false }) : (text += t)), signal);
        const final = { ...head(), response: text, done: true, done_reason: r.doneReason, context: r.tokens, ...stats(r, lease.loadDuration, start) };
        if (!out) return final;
        out.write(final);
        out.end();
      } catch (e) {
        if (signal.aborted) return reply.hijack();
        if (!out) throw e;
        out.fail(e);
      }
      return reply;
    } finally {
      lease.release();
    }
  });
}
