/**
 * `POST /api/create` in both forms — the starting document's (`name`, `modelfile`, `path`) and today's
 * JSON (`model`, `from`, `files`, `adapters`, `template`, `system`, `license`, `parameters`, `messages`) —
 * through the same builder as `mf build`, streaming its status lines; and `HEAD`/`POST /api/blobs/:digest`
 * for the files a remote create refers to.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Readable } from "node:stream";
import { RuntimeError } from "../../../core/errors.js";
import { isDigest } from "../../../core/digest.js";
import { tryParseRef } from "../../../core/reference.js";
import type { ProgressEvent } from "../../../core/progress.js";
import { ModelfileBuildError, buildImage } from "../../../builder/build.js";
import type { Command, MessageRole, ModelfileAst } from "../../../grammar/modelfile/ast.js";
import { decodeModelfile, parseModelfile } from "../../../grammar/modelfile/index.js";
import { clientSignal, streamOrLast } from "../http.js";
import type { RuntimeDeps } from "../infer.js";
import { type CreateBody, createSchema } from "../schemas.js";

/** today's JSON form as Modelfile commands */
function commandsOf(b: CreateBody): Command[] {
  const cmds: Command[] = [];
  const files = Object.values(b.files ?? {});
  if (files.length) for (const d of files) cmds.push({ kind: "from", value: d });
  else if (b.from) cmds.push({ kind: "from", value: b.from });
  else throw new RuntimeError("BAD_REQUEST", "neither 'from' or 'files' was specified");
  for (const d of Object.values(b.adapters ?? {})) cmds.push({ kind: "adapter", value: d });
  if (b.template !== undefined) cmds.push({ kind: "template", value: b.template });
  if (b.system !== undefined) cmds.push({ kind: "system", value: b.system });
  for (const [name, v] of Object.entries(b.parameters ?? {})) {
    for (const x of Array.isArray(v) ? v : [v]) cmds.push({ kind: "parameter", name: name.toLowerCase(), value: String(x) });
  }
  for (const l of b.license === undefined ? [] : Array.isArray(b.license) ? b.license : [b.license]) cmds.push({ kind: "license", value: l });
  for (const m of b.messages ?? []) {
    if (!["system", "user", "assistant"].includes(m.role)) throw new RuntimeError("BAD_REQUEST", `invalid message role "${m.role}"`);
    cmds.push({ kind: "message", role: m.role as MessageRole, content: m.content ?? "" });
  }
  return cmds;
}

export function createRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: CreateBody }>("/api/create", { schema: { body: createSchema } }, async (req, reply) => {
    const b = req.body;
    const name = b.model ?? b.name ?? "";
    if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
    const ref = tryParseRef(name);
    if (!ref) throw new RuntimeError("BAD_REQUEST", `invalid model name "${name}"`);
    if (b.quantize || b.quantization) throw new RuntimeError("BAD_REQUEST", "quantize is not supported by mf: import an already quantized GGUF");
    let ast: ModelfileAst;
    let source: { file: string; text: string } | undefined;
    let baseDir = deps.homeDir;
    if (b.modelfile !== undefined || (b.path && !b.from && !b.files)) {
      let text = b.modelfile;
      if (text === undefined) {
        text = decodeModelfile(await readFile(b.path!).catch(() => {
          throw new RuntimeError("BAD_REQUEST", `cannot read Modelfile ${b.path}`);
        }));
      }
      if (b.path) baseDir = dirname(b.path);
      source = { file: b.path ?? "Modelfile", text };
      const parsed = parseModelfile(text);
      if (parsed.diagnostics.some((d) => d.severity === "error")) throw new ModelfileBuildError(parsed.diagnostics, source);
      // older clients upload FROM files as blobs and send `FROM @sha256:…`
      ast = { commands: parsed.ast.commands.map((c) => (c.kind === "from" || c.kind === "adapter") && /^@sha256:/.test(c.value) ? { ...c, value: c.value.slice(1) } : c) };
    } else {
      ast = { commands: commandsOf(b) };
    }
    const signal = clientSignal(req, reply);
    const last = await streamOrLast<ProgressEvent>(reply, b.stream !== false, async (emit) => {
      emit({ status: "parsing modelfile" });
      await buildImage(
        ast,
        {
          store: deps.store,
          tags: [ref],
          resolve: { baseDir, contextDir: baseDir, homeDir: deps.homeDir },
          onProgress: emit,
          onWarning: (w) => deps.log.warn(w),
          signal,
        },
        source,
      );
    });
    return last ?? reply;
  });

  app.head<{ Params: { digest: string } }>("/api/blobs/:digest", async (req, reply) => {
    const digest = req.params.digest.replace(/^sha256-/, "sha256:");
    if (!isDigest(digest)) throw new RuntimeError("BAD_REQUEST", `invalid digest "${req.params.digest}"`);
    return reply.code((await deps.store.hasBlob(digest)) ? 200 : 404).send();
  });

  app.register(async (blobs) => {
    blobs.removeAllContentTypeParsers();
    blobs.addContentTypeParser("*", (_req, payload, done) => done(null, payload));
    blobs.post<{ Params: { digest: string } }>("/api/blobs/:digest", { bodyLimit: Number.MAX_SAFE_INTEGER }, async (req, reply) => {
      const digest = req.params.digest.replace(/^sha256-/, "sha256:");
      if (!isDigest(digest)) throw new RuntimeError("BAD_REQUEST", `invalid digest "${req.params.digest}"`);
      const body = (req.body as Readable | undefined) ?? req.raw;
      if (await deps.store.hasBlob(digest)) {
        body.resume();
        return reply.code(200).send();
      }
      try {
        await deps.store.writeBlobStream(body, { expected: digest, signal: clientSignal(req, reply) });
      } catch (e) {
        if ((e as { code?: string }).code === "DIGEST_INVALID") throw new RuntimeError("BAD_REQUEST", (e as Error).message);
        throw e;
      }
      return reply.code(201).send();
    });
  });
}
