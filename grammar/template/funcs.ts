/**
 * The builtin functions: Go's (`and or not eq ne lt le gt ge len index slice print printf println html
 * js urlquery call`) and Ollama's (`json currentDate yesterdayDate toTypeScriptType`). `and` and `or`
 * short-circuit, so the executor evaluates them itself; their entries here only carry the arity.
 */
import { goJson, htmlEscape, jsEscape, urlQueryEscape } from "./escape.js";
import { sprint, sprintf, sprintln } from "./fmt.js";
import { byteLength, compareStrings, kindOf, mapGet, num, structType, truth, typeName } from "./values.js";

/** An error a function reports; the executor positions it as `error calling NAME: …`. */
export class FuncError extends Error {}

export type Param = "any" | "string";

export interface FuncEnv {
  now(): Date;
  /** checks the length of a string being built against the output limit (throws past it) */
  output(length: number): void;
}

export interface Builtin {
  params: Param[];
  variadic?: Param;
  fn: (args: unknown[], env: FuncEnv) => unknown;
}

const fail = (msg: string): never => {
  throw new FuncError(msg);
};

type Basic = "bool" | "int" | "float" | "string" | "invalid" | "other";

function basic(v: unknown): Basic {
  const k = kindOf(v);
  switch (k) {
    case "bool":
    case "int":
    case "float":
    case "string":
      return k;
    case "invalid":
    case "nil":
      return "invalid";
    default:
      return "other";
  }
}

function eq1(a: unknown, b: unknown): boolean {
  const k1 = basic(a);
  const k2 = basic(b);
  if (k1 !== k2) {
    if (k1 !== "invalid" && k2 !== "invalid") fail("incompatible types for comparison");
    return false;
  }
  switch (k1) {
    case "bool":
    case "string":
      return a === b;
    case "int":
    case "float":
      return num(a) === num(b);
    case "invalid":
      return true;
    default: {
      const ka = kindOf(a);
      const kb = kindOf(b);
      if (ka === "slice" || ka === "map" || ka === "func" || kb === "slice" || kb === "map" || kb === "func") {
        fail(`non-comparable types ${typeName(a)}, ${typeName(b)}`);
      }
      if (structType(a) !== structType(b)) fail("incompatible types for comparison");
      return a === b;
    }
  }
}

function eq(args: unknown[]): boolean {
  if (args.length < 2) fail("missing argument for comparison");
  const [a, ...rest] = args;
  for (const b of rest) if (eq1(a, b)) return true;
  return false;
}

function lt(a: unknown, b: unknown): boolean {
  const k1 = basic(a);
  const k2 = basic(b);
  if (k1 === "invalid" || k1 === "other" || k2 === "invalid" || k2 === "other") fail("invalid type for comparison");
  if (k1 !== k2) fail("incompatible types for comparison");
  if (k1 === "bool") fail("invalid type for comparison");
  if (k1 === "string") return compareStrings(a as string, b as string) < 0;
  return num(a) < num(b);
}

function indexArg(i: unknown, cap: number): number {
  const k = kindOf(i);
  if (k === "nil" || k === "invalid") fail("cannot index slice/array with nil");
  if (k !== "int") fail(`cannot index slice/array with type ${typeName(i)}`);
  const x = num(i);
  if (x < 0 || x > cap) fail(`index out of range: ${x}`);
  return x;
}

function index(args: unknown[]): unknown {
  let item = args[0];
  if (kindOf(item) === "nil" || kindOf(item) === "invalid") fail("index of untyped nil");
  for (const i of args.slice(1)) {
    const k = kindOf(item);
    if (k === "nil") fail("index of nil pointer");
    if (k === "slice" || k === "string") {
      const s = k === "string" ? Buffer.from(item as string, "utf8") : (item as unknown[]);
      const x = indexArg(i, s.length);
      if (x >= s.length) fail(`index out of range: ${x}`);
      item = k === "string" ? (s as Buffer)[x]! : ((s as unknown[])[x] ?? null);
    } else if (k === "map") {
      const ik = kindOf(i);
      if (ik === "nil" || ik === "invalid") fail("value is nil; should be of type string");
      if (ik !== "string") fail(`value has type ${typeName(i)}; should be string`);
      item = mapGet(item as object, i as string);
    } else fail(`can't index item of type ${typeName(item)}`);
  }
  return item;
}

function slice(args: unknown[]): unknown {
  const item = args[0];
  const k = kindOf(item);
  if (k === "nil" || k === "invalid") fail("slice of untyped nil");
  const idx = args.slice(1);
  if (idx.length > 3) fail(`too many slice indexes: ${idx.length}`);
  if (k !== "string" && k !== "slice") fail(`can't slice item of type ${typeName(item)}`);
  if (k === "string" && idx.length === 3) fail("cannot 3-index slice a string");
  const bytes = k === "string" ? Buffer.from(item as string, "utf8") : null;
  const len = bytes ? bytes.length : (item as unknown[]).length;
  const x = [0, len, len];
  idx.forEach((v, n) => (x[n] = indexArg(v, len)));
  if (x[0]! > x[1]!) fail(`invalid slice index: ${x[0]} > ${x[1]}`);
  if (idx.length === 3 && x[1]! > x[2]!) fail(`invalid slice index: ${x[1]} > ${x[2]}`);
  return bytes ? bytes.subarray(x[0], x[1]).toString("utf8") : (item as unknown[]).slice(x[0], x[1]);
}

function length(v: unknown): number {
  switch (kindOf(v)) {
    case "nil":
    case "invalid":
      return fail("len of nil pointer");
    case "string":
      return byteLength(v as string);
    case "slice":
      return (v as unknown[]).length;
    case "map":
      return Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).length;
    default:
      return fail(`len of type ${typeName(v)}`);
  }
}

/** text/template's evalArgs for html/js/urlquery: one string as is, else Sprint with nil as `<no value>`. */
function argText(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === "string") return args[0];
  return sprint(args.map((a) => (a === null || a === undefined ? "<no value>" : a)));
}

function call(args: unknown[]): unknown {
  const [fn, ...rest] = args;
  const k = kindOf(fn);
  if (k === "nil" || k === "invalid") fail("call of nil");
  if (k !== "func") fail(`non-function of type ${typeName(fn)}`);
  try {
    const r = (fn as (...a: unknown[]) => unknown)(...rest);
    return r === undefined ? null : r;
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
}

function date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

const TS_TYPES: Record<string, string> = {
  string: "string",
  number: "number",
  integer: "number",
  boolean: "boolean",
  array: "any[]",
  object: "Record<string, any>",
  null: "null",
};

/** Ollama's toTypeScriptType: only an `api.ToolProperty` has a type; anything else is `any`. */
function toTypeScriptType(v: unknown): string {
  if (structType(v)?.name !== "api.ToolProperty") return "any";
  const t = (v as { Type?: unknown }).Type;
  const types = Array.isArray(t) ? t : typeof t === "string" && t !== "" ? [t] : [];
  if (types.length === 0) return "any";
  return types.map((x) => TS_TYPES[String(x)] ?? "any").join(" | ");
}

export const BUILTINS: Record<string, Builtin> = {
  and: { params: ["any"], variadic: "any", fn: (a) => a.find((x) => !truth(x)) ?? a[a.length - 1] },
  or: { params: ["any"], variadic: "any", fn: (a) => a.find((x) => truth(x)) ?? a[a.length - 1] },
  not: { params: ["any"], fn: (a) => !truth(a[0]) },
  eq: { params: ["any"], variadic: "any", fn: (a) => eq(a) },
  ne: { params: ["any", "any"], fn: (a) => !eq(a) },
  lt: { params: ["any", "any"], fn: (a) => lt(a[0], a[1]) },
  le: { params: ["any", "any"], fn: (a) => lt(a[0], a[1]) || eq(a) },
  gt: { params: ["any", "any"], fn: (a) => !(lt(a[0], a[1]) || eq(a)) },
  ge: { params: ["any", "any"], fn: (a) => !lt(a[0], a[1]) },
  len: { params: ["any"], fn: (a) => length(a[0]) },
  index: { params: ["any"], variadic: "any", fn: index },
  slice: { params: ["any"], variadic: "any", fn: slice },
  print: { params: [], variadic: "any", fn: (a) => sprint(a) },
  println: { params: [], variadic: "any", fn: (a) => sprintln(a) },
  printf: { params: ["string"], variadic: "any", fn: (a, env) => sprintf(a[0] as string, a.slice(1), env.output) },
  html: { params: [], variadic: "any", fn: (a) => htmlEscape(argText(a)) },
  js: { params: [], variadic: "any", fn: (a) => jsEscape(argText(a)) },
  urlquery: { params: [], variadic: "any", fn: (a) => urlQueryEscape(argText(a)) },
  call: { params: ["any"], variadic: "any", fn: call },
  json: { params: ["any"], fn: (a) => goJson(a[0]) },
  currentDate: { params: [], variadic: "string", fn: (_a, env) => date(env.now()) },
  yesterdayDate: {
    params: [],
    variadic: "string",
    fn: (_a, env) => {
      const d = env.now();
      return date(new Date(d.getFullYear(), d.getMonth(), d.getDate() - 1, 12));
    },
  },
  toTypeScriptType: { params: ["any"], fn: (a) => toTypeScriptType(a[0]) },
};

export function hasBuiltin(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(BUILTINS, name);
}
