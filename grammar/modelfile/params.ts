/**
 * The parameter table of compat.md §1 and the typing rules shared by Modelfiles (`PARAMETER k v`) and
 * API requests (`options`). Current Ollama names first, then the legacy names of the API document we
 * started from: mf accepts them all, the engine applies the ones it supports, and the rest (`ignored`)
 * draw one warning.
 *
 * `ignored` reflects what node-llama-cpp can apply (mlock, vocab-only loading, NUMA, newline penalty); the
 * runtime owns that list and may narrow it.
 */
import type { Command, Diagnostic, ParameterCommand } from "./ast.js";
import { nearest } from "./suggest.js";

export type ParamType = "int" | "float" | "bool" | "stringList";

export interface ParamSpec {
  name: string;
  type: ParamType;
  /** Ollama's default, where compat.md gives one */
  default?: number | boolean;
  /** only in the starting API document, dropped by current Ollama */
  legacy: boolean;
  /** accepted but not applied by the engine: callers warn once */
  ignored: boolean;
}

function p(name: string, type: ParamType, def?: number | boolean): ParamSpec {
  return def === undefined ? { name, type, legacy: false, ignored: false } : { name, type, default: def, legacy: false, ignored: false };
}
function legacy(name: string, type: ParamType, ignored: boolean): ParamSpec {
  return { name, type, legacy: true, ignored };
}

export const PARAMETERS: readonly ParamSpec[] = [
  p("num_ctx", "int"),
  p("num_batch", "int", 512),
  p("num_gpu", "int"),
  p("main_gpu", "int"),
  p("use_mmap", "bool"),
  p("num_thread", "int"),
  p("num_keep", "int", 4),
  p("seed", "int", -1),
  p("num_predict", "int", -1),
  // speculative decoding: tokens the image's DRAFT model drafts ahead (0: no drafting); Ollama's default 4
  p("draft_num_predict", "int", 4),
  p("top_k", "int", 40),
  p("top_p", "float", 0.9),
  p("min_p", "float", 0),
  p("typical_p", "float", 1.0),
  p("repeat_last_n", "int", 64),
  p("temperature", "float", 0.8),
  p("repeat_penalty", "float", 1.0),
  p("presence_penalty", "float", 0),
  p("frequency_penalty", "float", 0),
  p("stop", "stringList"),
  legacy("tfs_z", "float", true),
  legacy("mirostat", "int", true),
  legacy("mirostat_tau", "float", true),
  legacy("mirostat_eta", "float", true),
  legacy("penalize_newline", "bool", false),
  legacy("numa", "bool", false),
  legacy("num_gqa", "int", true),
  legacy("low_vram", "bool", true),
  legacy("f16_kv", "bool", true),
  legacy("logits_all", "bool", true),
  legacy("vocab_only", "bool", false),
  legacy("use_mlock", "bool", false),
  legacy("embedding_only", "bool", true),
  legacy("rope_frequency_base", "float", true),
  legacy("rope_frequency_scale", "float", true),
];

const BY_NAME: ReadonlyMap<string, ParamSpec> = new Map(PARAMETERS.map((s) => [s.name, s]));
export const PARAMETER_NAMES: readonly string[] = PARAMETERS.map((s) => s.name);

export function parameterSpec(name: string): ParamSpec | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** The phrase used in messages: `expected an integer`. */
export const EXPECTED: Record<ParamType, string> = {
  int: "an integer",
  float: "a number",
  bool: "a boolean (true or false)",
  stringList: "a string",
};

const INT = /^[+-]?\d+$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLS: Record<string, boolean> = { true: true, t: true, "1": true, false: false, f: false, "0": false };

export type Typed = { ok: true; value: number | boolean | string } | { ok: false; expected: string };

/**
 * Types one raw Modelfile value. Ints are decimal with an optional sign (`1.0` and `1e3` are rejected)
 * and must be safe integers; floats are decimal, exponent allowed, finite; bools are true/false/t/f/1/0
 * in any case. `stop` values are strings as written. An unknown name yields `expected: "a known parameter"`.
 */
export function typeParameter(name: string, raw: string): Typed {
  const spec = parameterSpec(name);
  if (!spec) return { ok: false, expected: "a known parameter" };
  const bad = { ok: false as const, expected: EXPECTED[spec.type] };
  switch (spec.type) {
    case "stringList":
      return { ok: true, value: raw };
    case "int": {
      if (!INT.test(raw)) return bad;
      const v = Number(raw);
      return Number.isSafeInteger(v) ? { ok: true, value: v === 0 ? 0 : v } : bad;
    }
    case "float": {
      if (!FLOAT.test(raw)) return bad;
      const v = Number(raw);
      return Number.isFinite(v) ? { ok: true, value: v === 0 ? 0 : v } : bad;
    }
    case "bool": {
      const v = BOOLS[raw.toLowerCase()];
      return v === undefined ? bad : { ok: true, value: v };
    }
  }
}

export interface TypedParameters {
  /** typed values; `stop` (when given) is always a list, scalars: the last one wins */
  params: Record<string, unknown>;
  diagnostics: Diagnostic[];
}

function pos(c: ParameterCommand, which: "name" | "value"): { line: number; column: number } {
  const l = (which === "name" ? c.nameLoc : c.valueLoc) ?? c.loc;
  return l ? { line: l.line, column: l.column } : { line: 1, column: 1 };
}

function firstLineLength(s: string): number {
  const nl = s.search(/\r?\n/);
  return Math.max(1, [...(nl === -1 ? s : s.slice(0, nl))].length);
}

/**
 * Types the PARAMETER commands of a Modelfile. Errors for unknown names (with a nearest-name hint) and
 * values of the wrong type; one warning per legacy parameter the engine ignores. Positions come from the
 * commands' `nameLoc`/`valueLoc` (line 1, column 1 when a command has none).
 */
export function typeParameters(commands: readonly Command[]): TypedParameters {
  const params: Record<string, unknown> = {};
  const diagnostics: Diagnostic[] = [];
  const warned = new Set<string>();
  for (const c of commands) {
    if (c.kind !== "parameter") continue;
    const spec = parameterSpec(c.name);
    if (!spec) {
      const hint = nearest(c.name, PARAMETER_NAMES);
      diagnostics.push({
        severity: "error",
        ...pos(c, "name"),
        length: Math.max(1, [...c.name].length),
        message: `unknown parameter "${c.name}"`,
        ...(hint ? { hint: `did you mean ${hint}?` } : {}),
      });
      continue;
    }
    const typed = typeParameter(spec.name, c.value);
    if (!typed.ok) {
      diagnostics.push({
        severity: "error",
        ...pos(c, "value"),
        length: firstLineLength(c.value),
        message: `invalid value "${c.value}" for parameter ${spec.name}: expected ${typed.expected}`,
      });
      continue;
    }
    if (spec.ignored && !warned.has(spec.name)) {
      warned.add(spec.name);
      diagnostics.push({
        severity: "warning",
        ...pos(c, "name"),
        length: Math.max(1, [...c.name].length),
        message: `parameter ${spec.name} is accepted for compatibility but ignored by the engine`,
      });
    }
    if (spec.type === "stringList") {
      const list = (params[spec.name] as string[] | undefined) ?? [];
      list.push(typed.value as string);
      params[spec.name] = list;
    } else {
      params[spec.name] = typed.value;
    }
  }
  return { params, diagnostics };
}

export type OptionsResult =
  | { ok: true; options: Record<string, unknown>; warnings: string[] }
  | { ok: false; errors: string[]; warnings: string[] };

function describe(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s === undefined) return `a ${typeof v}`;
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
}

/**
 * Validates the `options` object of an API request with the same table. JSON types must match: numbers
 * for ints (integral values only) and floats, booleans for bools, a list of strings for `stop` (a single
 * string is taken as a one-entry list). `null` means unset. Unknown keys and legacy keys the engine
 * ignores are warnings (as in Ollama, which logs and drops unknown options); type mismatches are errors
 * that name the expected type.
 */
export function validateOptions(obj: unknown): OptionsResult {
  const warnings: string[] = [];
  if (obj === undefined || obj === null) return { ok: true, options: {}, warnings };
  if (typeof obj !== "object" || Array.isArray(obj)) {
    return { ok: false, errors: [`options must be a JSON object, got ${describe(obj)}`], warnings };
  }
  const options: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const [key, v] of Object.entries(obj as Record<string, unknown>)) {
    const spec = parameterSpec(key);
    if (!spec || spec.name !== key) {
      const hint = nearest(key, PARAMETER_NAMES);
      warnings.push(`unknown option "${key}" ignored${hint ? ` (did you mean ${hint}?)` : ""}`);
      continue;
    }
    if (v === null || v === undefined) continue;
    const bad = () => errors.push(`invalid value ${describe(v)} for option ${key}: expected ${spec.type === "stringList" ? "a list of strings" : EXPECTED[spec.type]}`);
    switch (spec.type) {
      case "int":
        if (typeof v === "number" && Number.isSafeInteger(v)) options[key] = v;
        else bad();
        break;
      case "float":
        if (typeof v === "number" && Number.isFinite(v)) options[key] = v;
        else bad();
        break;
      case "bool":
        if (typeof v === "boolean") options[key] = v;
        else bad();
        break;
      case "stringList":
        if (typeof v === "string") options[key] = [v];
        else if (Array.isArray(v) && v.every((s) => typeof s === "string")) options[key] = [...v];
        else bad();
        break;
    }
    if (spec.ignored) warnings.push(`option ${key} is accepted for compatibility but ignored by the engine`);
  }
  return errors.length ? { ok: false, errors, warnings } : { ok: true, options, warnings };
}
