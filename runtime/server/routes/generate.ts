/** `POST /api/generate`: a completion of a prompt (compat.md §5), `_debug_render_only` included. */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import { renderGeneratePromptAsync } from "../../prompt/index.js";
import { fitPrompt } from "../../options.js";
import { NdjsonStream, clientSignal, createdAt } from "../http.js";
import { IMAGES_UNSUPPORTED, Logprobs, type RuntimeDeps, acquire, generate, ggufTemplate, loadOrUnload, needsGgufTemplate, prepare, promptTokens, stats } from "../infer.js";
import type { Lease } from "../../scheduler.js";
import { imagePrompt, requireCapability } from "../models.js";
import { ThinkingSplitter } from "../../thinking.js";
import { thinkPlan } from "../turn.js";
import { type GenerateBody, generateSchema } from "../schemas.js";

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
    // raw prompts have no template, so no thinking tags to separate by
    const plan = b.raw ? { think: b.think, tags: undefined } : thinkPlan(b.model, b.template || p.d.template, b.think);
    const logprobs = Logprobs.of(b.logprobs, b.top_logprobs);
    const withLogprobs = () => {
      const lp = logprobs?.drain();
      return lp?.length ? { logprobs: lp } : {};
    };
    const signal = clientSignal(req, reply);
    const prompt = b.prompt ?? "";
    const head = () => ({ model: b.model, created_at: createdAt() });

    // rendered in slices: a template that loops until its budget is spent leaves the server responsive
    const render = (lease?: Lease) =>
      renderGeneratePromptAsync(
        imagePrompt(p.d),
        { prompt, suffix: b.suffix, system: b.system, template: b.template, raw: b.raw, think: plan.think, hasContext: !!b.context?.length },
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
      let thinking = "";
      const splitter = plan.tags ? new ThinkingSplitter(plan.tags, rendered.prompt.trimEnd().endsWith(plan.tags.open)) : undefined;
      const emit = (part: { thinking: string; content: string }) => {
        if (part.thinking) {
          if (out) out.write({ ...head(), response: "", thinking: part.thinking, done: false, ...withLogprobs() });
          else thinking += part.thinking;
        }
        if (part.content) {
          if (out) out.write({ ...head(), response: part.content, done: false, ...withLogprobs() });
          else text += part.content;
        }
      };
      try {
        const r = await generate(lease, p, tokens, (t) => emit(splitter ? splitter.push(t) : { thinking: "", content: t }), signal, logprobs?.request);
        if (splitter) emit(splitter.flush());
        const final = { ...head(), response: text, ...(thinking ? { thinking } : {}), done: true, done_reason: r.doneReason, context: r.tokens, ...stats(r, lease.loadDuration, start) };
        if (!out) return logprobs ? { ...final, logprobs: logprobs.all } : final;
        Object.assign(final, withLogprobs());
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
