/**
 * What a FROM or ADAPTER value names: a file (absolute, `~`, or relative to the Modelfile's directory and
 * inside the build context), a blob (`sha256:…`), or a model name. Ollama's rule is "a path if it
 * exists, else a model name"; mf adds that a value that can only be meant as a path (`./x`, `../x`,
 * `*.gguf`) and does not exist is a missing file, not a strange model name.
 *
 * A server (/api/create) reads its own files only inside the directory it was given (`fileRoot`), and
 * none without one: a value outside is refused before anything is looked up, so that an answer never
 * tells whether a file exists there; inside, a symbolic link that leads out counts as missing.
 */
import * as fs from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { isDigest } from "../core/digest.js";
import { type ModelRef, tryParseRef } from "../core/reference.js";

export type Resolved =
  | { kind: "file"; path: string }
  | { kind: "blob"; digest: string }
  | { kind: "model"; ref: ModelRef }
  | { kind: "error"; message: string; hint?: string };

export interface ResolveContext {
  /** directory of the Modelfile: relative paths resolve against it */
  baseDir: string;
  /** the build context: relative paths must stay inside it */
  contextDir: string;
  /** home directory for `~` (injected: only cli/ reads the real one) */
  homeDir: string;
  /**
   * Which files may be read: absent, any (`mf build`); null, none (a server without --create-root); a
   * directory, only regular files inside it (a server with --create-root DIR).
   */
  fileRoot?: string | null;
}

/** The hint of a refused server-side path. */
export const UPLOAD_HINT = "upload the file as a blob (POST /api/blobs/sha256:<digest>) and name it by its digest";
const NO_ROOT_HINT = `${UPLOAD_HINT}, or start the server with --create-root DIR`;

const PATHLIKE = /^(\.{1,2}[/\\]|[/\\~])|\.(gguf|bin|safetensors)$/i;

async function exists(p: string): Promise<"file" | "dir" | undefined> {
  try {
    const st = await fs.stat(p);
    return st.isDirectory() ? "dir" : "file";
  } catch {
    return undefined;
  }
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith(".." + sep) && rel !== ".." && !isAbsolute(rel));
}

export async function resolveSource(value: string, ctx: ResolveContext): Promise<Resolved> {
  if (/^sha256:/i.test(value)) {
    return isDigest(value) ? { kind: "blob", digest: value } : { kind: "error", message: `invalid blob digest "${value}"`, hint: "expected sha256: followed by 64 lowercase hex digits" };
  }
  if (ctx.fileRoot !== undefined) return resolveInRoot(value, ctx, ctx.fileRoot);
  let path: string;
  let relativeToContext = false;
  if (value === "~" || value.startsWith("~/")) path = join(ctx.homeDir, value.slice(1));
  else if (isAbsolute(value)) path = value;
  else {
    path = resolve(ctx.baseDir, value);
    relativeToContext = true;
  }
  const kind = await exists(path);
  if (kind) {
    if (relativeToContext) {
      const [real, realCtx] = await Promise.all([fs.realpath(path), fs.realpath(ctx.contextDir)]);
      if (!inside(real, realCtx)) {
        return {
          kind: "error",
          message: `"${value}" is outside the build context ${ctx.contextDir}`,
          hint: "relative paths must stay inside the context directory; use an absolute or ~ path to reach elsewhere",
        };
      }
    }
    if (kind === "dir") {
      return { kind: "error", message: `"${value}" is a directory`, hint: "FROM takes a GGUF file (safetensors import is not supported)" };
    }
    return { kind: "file", path };
  }
  if (PATHLIKE.test(value)) return { kind: "error", message: `no such file "${value}"`, hint: `looked for ${path}` };
  const ref = tryParseRef(value);
  if (!ref) {
    return { kind: "error", message: `"${value}" is neither an existing file nor a valid model name` };
  }
  return { kind: "model", ref };
}

/** A path as a server takes it: relative to the Modelfile's directory, `~` in its home, absolute as is. */
export function serverPath(value: string, ctx: Pick<ResolveContext, "baseDir" | "homeDir">): string {
  if (value === "~" || value.startsWith("~/")) return join(ctx.homeDir, value.slice(1));
  return resolve(ctx.baseDir, value);
}

/**
 * A regular file at `path` whose real path (links followed) is inside `root`, or why not. Nothing is
 * looked up for a path outside the root; a missing file and a link leading out get the same answer.
 */
export async function fileInRoot(path: string, root: string): Promise<{ path: string } | { error: "outside" | "missing" | "directory" | "special" }> {
  if (!inside(path, root)) return { error: "outside" };
  let real: string;
  let realRoot: string;
  try {
    [real, realRoot] = await Promise.all([fs.realpath(path), fs.realpath(root)]);
  } catch {
    return { error: "missing" };
  }
  if (!inside(real, realRoot)) return { error: "missing" };
  const st = await fs.stat(real).catch(() => undefined);
  if (!st) return { error: "missing" };
  if (st.isDirectory()) return { error: "directory" };
  if (!st.isFile()) return { error: "special" };
  return { path: real };
}

async function resolveInRoot(value: string, ctx: ResolveContext, root: string | null): Promise<Resolved> {
  const pathLike = PATHLIKE.test(value);
  if (root === null) {
    if (pathLike) return { kind: "error", message: `"${value}" names a file on the server, and this server reads none`, hint: NO_ROOT_HINT };
    const ref = tryParseRef(value);
    return ref ? { kind: "model", ref } : { kind: "error", message: `"${value}" is neither a blob digest nor a valid model name`, hint: NO_ROOT_HINT };
  }
  const path = serverPath(value, ctx);
  const f = await fileInRoot(path, root);
  if ("path" in f) return { kind: "file", path: f.path };
  if (f.error === "outside" && pathLike) {
    return { kind: "error", message: `"${value}" is outside the directory this server reads (--create-root)`, hint: UPLOAD_HINT };
  }
  if (f.error === "directory") return { kind: "error", message: `"${value}" is a directory`, hint: "FROM takes a GGUF file (safetensors import is not supported)" };
  if (f.error === "special") return { kind: "error", message: `"${value}" is not a regular file` };
  if (pathLike) return { kind: "error", message: `no such file "${value}" in the directory this server reads (--create-root)` };
  const ref = tryParseRef(value);
  return ref ? { kind: "model", ref } : { kind: "error", message: `"${value}" is neither an existing file nor a valid model name` };
}
