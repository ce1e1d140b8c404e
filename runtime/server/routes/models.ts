/** The model catalogue: `/api/tags`, `/api/show`, `/api/copy`, `/api/delete`, `/api/ps`, `/api/version`, `/`. */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import { displayRef, tryParseRef } from "../../../core/reference.js";
import { draftDetails, formatParameters, modelInfo, modelfileOf } from "../../../builder/describe.js";
import { type RuntimeDeps } from "../infer.js";
import { capabilities, notFound } from "../models.js";
import { copySchema, nameSchema } from "../schemas.js";

const hex = (digest: string) => digest.replace(/^sha256:/, "");
/** Go's zero time is what Ollama shows for "never expires"; mf shows a far future instead. */
const FOREVER = "2318-01-01T00:00:00Z";

export function modelRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  const root = async () => "Ollama is running";
  app.get("/", root);
  app.get("/api/version", async () => ({ version: deps.version }));

  app.get("/api/tags", async () => {
    const models = [];
    for (const m of await deps.store.listModels()) {
      const name = displayRef(m.ref);
      const d = await deps.models.describe(name).catch(() => undefined);
      models.push({
        name,
        model: name,
        modified_at: m.modified.toISOString(),
        size: m.size,
        digest: hex(m.digest),
        details: d?.details ?? null,
        capabilities: d ? capabilities(d.template, d.details.family) : ["completion"],
      });
    }
    return { models };
  });

  app.post<{ Body: { model?: string; name?: string; verbose?: boolean } }>("/api/show", { schema: { body: nameSchema } }, async (req) => {
    const name = req.body.model ?? req.body.name ?? "";
    if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
    const d = await deps.models.describe(name);
    return {
      license: d.licenses.join("\n"),
      modelfile: modelfileOf(d),
      parameters: formatParameters(d.params),
      template: d.template ?? "",
      system: d.system ?? "",
      details: d.details,
      messages: d.messages.length ? d.messages : undefined,
      model_info: await modelInfo(d),
      // mf's addition: the speculative-decoding draft model of the image (its DRAFT), when it has one
      draft: await draftDetails(d),
      capabilities: capabilities(d.template, d.details.family),
      modified_at: d.model.modified.toISOString(),
    };
  });

  app.post<{ Body: { source: string; destination: string } }>("/api/copy", { schema: { body: copySchema } }, async (req, reply) => {
    const { source, destination } = req.body;
    const src = await deps.models.find(source);
    if (!tryParseRef(destination)) throw new RuntimeError("BAD_REQUEST", `invalid destination name "${destination}"`);
    await deps.store.copyModel(src.ref, destination);
    return reply.code(200).send();
  });

  app.delete<{ Body: { model?: string; name?: string } }>("/api/delete", { schema: { body: nameSchema } }, async (req, reply) => {
    const name = req.body?.model ?? req.body?.name ?? "";
    if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
    const m = await deps.store.findModel(tryParseRef(name) ?? name).catch(() => undefined);
    if (!m) throw notFound(name);
    await deps.store.deleteModel(m.ref);
    return reply.code(200).send();
  });

  app.get("/api/ps", async () => ({
    models: deps.scheduler.loaded().map((l) => ({
      name: l.name,
      model: l.name,
      size: l.sizeBytes,
      digest: hex(l.digest),
      details: l.details ?? null,
      expires_at: l.expiresAt === Infinity ? FOREVER : new Date(l.expiresAt).toISOString(),
      size_vram: l.vramBytes,
      context_length: l.contextSize,
      // mf's addition: the draft model decoding beside it (speculative decoding): its draft_num_predict and
      // how many drafted tokens the model accepted and rejected since it was loaded
      ...(l.draft
        ? { draft: { digest: hex(l.draft.digest), size: l.draft.sizeBytes, draft_num_predict: l.draft.maxTokens, accepted_tokens: l.draft.accepted, rejected_tokens: l.draft.rejected, decodes: l.draft.decodes } }
        : {}),
      // mf's own field: the CPU threads the model runs with
      threads: l.threads,
    })),
  }));
}
