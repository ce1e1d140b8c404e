/**
 * What a FROM or ADAPTER value names: a file (absolute, `~`, or relative to the Modelfile's directory and
 * inside the build context), a blob (`sha256:…`), or a model name. Ollama's rule is "a path if it
 * exists, else a model name"; mf adds that a value that can only be meant as a path (`./x`, `../x`,
 * `*.gguf`) and does not exist is a missing file, not a strange model name.
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
}

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
