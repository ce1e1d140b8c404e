/**
 * `POST /api/create` in both forms — the starting document's (`name`, `modelfile`, `path`) and today's
 * JSON (`model`, `from`, `files`, `adapters`, `draft_files`, `template`, `system`, `license`, `parameters`, `messages`) —
 * through the same builder as `mf build`, streaming its status lines; and `HEAD`/`POST /api/blobs/:digest`
 * for the files a remote create refers to.
 *
 * Clients upload their files as blobs and name them by digest. The server reads a file of its own (a
 * `path`, a FROM or ADAPTER path) only when it was started with `--create-root DIR`, and only inside DIR
 * (builder/resolve.ts); errors about a file it read never quote the file.
 */
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Readable } from "node:stream";
import { BuildError, RuntimeError } from "../../../core/errors.js";
import { isDigest } from "../../../core/digest.js";
import { tryParseRef } from "../../../core/reference.js";
import type { ProgressEvent } from "../../../core/progress.js";
import { ModelfileBuildError, buildImage } from "../../../builder/build.js";
import { UPLOAD_HINT, fileInRoot, serverPath } from "../../../builder/resolve.js";
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
  // Ollama's `draft_files` (api.CreateRequest.DraftFiles): the draft model's blobs
  for (const d of Object.values(b.draft_files ?? {})) cmds.push({ kind: "draft", value: d });
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

/** The largest Modelfile read from the server's disk (a request's body has the same limit). */
const MAX_MODELFILE_BYTES = 64 << 20;

/** The Modelfile at `path` inside the create root, as bytes. Never says more than "not there" about a file outside. */
async function readServerModelfile(path: string, deps: RuntimeDeps): Promise<{ bytes: Buffer; dir: string }> {
  const root = deps.createRoot;
  if (!root) {
    throw new RuntimeError("BAD_REQUEST", `this server reads no files, so "path" cannot be used: send the Modelfile's text as "modelfile" (for its files: ${UPLOAD_HINT}), or start the server with --create-root DIR`);
  }
  const f = await fileInRoot(serverPath(path, { baseDir: root, homeDir: deps.homeDir }), root);
  if ("error" in f) {
    throw new RuntimeError("BAD_REQUEST", f.error === "outside" ? `"${path}" is outside the directory this server reads (--create-root)` : `no Modelfile "${path}" in the directory this server reads (--create-root)`);
  }
  const fh = await open(f.path, "r");
  try {
    const size = (await fh.stat()).size;
    if (size > MAX_MODELFILE_BYTES) throw new RuntimeError("BAD_REQUEST", `Modelfile "${path}" is larger than ${MAX_MODELFILE_BYTES} bytes`);
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await fh.read(bytes, 0, size, 0);
    return { bytes: bytes.subarray(0, bytesRead), dir: dirname(f.path) };
  } finally {
    await fh.close();
  }
}

/** A Modelfile the server read itself is not quoted: its errors keep the position only. */
function unquoted(e: unknown, path: string): unknown {
  if (!(e instanceof ModelfileBuildError)) return e;
  const d = e.diagnostics.find((x) => x.severity === "error")!;
  return new BuildError("MODELFILE_INVALID", `${path}:${d.line}:${d.column}: invalid Modelfile (a file the server reads is not quoted in errors)`);
}

export function createRoutes(app: FastifyInstance, deps: RuntimeDeps): void {
  app.post<{ Body: CreateBody }>("/api/create", { schema: { body: createSchema } }, async (req, reply) => {
    const b = req.body;
    const name = b.model ?? b.name ?? "";
    if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
    const ref = tryParseRef(name);
    if (!ref) throw new RuntimeError("BAD_REQUEST", `invalid model name "${name}"`);
    if (b.quantize || b.quantization) throw new RuntimeError("BAD_REQUEST", "quantize is not supported by mf: import an already quantized GGUF");
    if (b.draft_quantize) throw new RuntimeError("BAD_REQUEST", "draft_quantize is not supported by mf: import an already quantized draft GGUF");
    let ast: ModelfileAst;
    let source: { file: string; text: string } | undefined;
    // relative paths in a Modelfile sent as text resolve inside the create root (without one, none are read)
    let baseDir = deps.createRoot ?? deps.homeDir;
    // an older client sends the Modelfile's text with its `path`: its relative paths are relative to that
    if (deps.createRoot && b.path) baseDir = dirname(serverPath(b.path, { baseDir: deps.createRoot, homeDir: deps.homeDir }));
    const serverFile = b.modelfile === undefined && b.path && !b.from && !b.files ? b.path : undefined;
    if (b.modelfile !== undefined || serverFile) {
      let text = b.modelfile;
      if (serverFile) {
        const read = await readServerModelfile(serverFile, deps);
        text = decodeModelfile(read.bytes);
        baseDir = read.dir;
      }
      source = { file: b.path ?? "Modelfile", text: text! };
      const parsed = parseModelfile(text!);
      if (parsed.diagnostics.some((d) => d.severity === "error")) {
        const err = new ModelfileBuildError(parsed.diagnostics, source);
        throw serverFile ? unquoted(err, serverFile) : err;
      }
      // older clients upload FROM files as blobs and send `FROM @sha256:…`
      ast = { commands: parsed.ast.commands.map((c) => (c.kind === "from" || c.kind === "adapter" || c.kind === "draft") && /^@sha256:/.test(c.value) ? { ...c, value: c.value.slice(1) } : c) };
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
          resolve: { baseDir, contextDir: deps.createRoot ?? baseDir, homeDir: deps.homeDir, fileRoot: deps.createRoot ?? null },
          onProgress: emit,
          onWarning: (w) => deps.log.warn(w),
          signal,
        },
        source,
      ).catch((e: unknown) => {
        throw serverFile ? unquoted(e, serverFile) : e;
      });
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
