/**
 * The Go value model the engine executes on. Template data is plain JavaScript, read as Go would see the
 * `map[string]any` Ollama passes to text/template:
 *
 * | JavaScript                               | Go                                   |
 * |------------------------------------------|--------------------------------------|
 * | `undefined` (a pipeline's missing value) | invalid reflect.Value (`<no value>`) |
 * | `null`, an absent or undefined key       | nil interface                        |
 * | boolean, string                          | bool, string                         |
 * | number that is a safe integer            | int                                  |
 * | other number, `GoFloat`                  | float64                              |
 * | array                                    | `[]interface {}`                     |
 * | plain object                             | `map[string]interface {}`            |
 * | object made by `goStruct`                | a struct (fields in order, JSON tags)|
 * | function                                 | func (only `call` invokes it)        |
 *
 * Integral numbers are ints because Ollama's own prompt data holds Go ints, and template authors expect
 * `{{ .N }}` with N=1000000 to print `1000000`; Go's `json.Unmarshal` into `map[string]any` would make
 * every JSON number a float64 (printing `1e+06`). Wrap a number in `GoFloat` to get float64 semantics.
 */

/** A float64 whose value may be integral (the literal `1.0`, or data that must behave as float64). */
export class GoFloat {
  constructor(readonly value: number) {}
}

export interface StructField {
  /** Go field name, as templates address it (`.Role`) */
  name: string;
  /** JSON name (`json:"role"`); omitted: the field name; "-": never encoded */
  json?: string;
  /** `omitempty`: left out of JSON when empty (false, 0, "", nil, empty list or map) */
  omitempty?: boolean;
}

export interface StructType {
  /** Go type name for messages and `%T` (e.g. `api.Message`) */
  name: string;
  fields: readonly StructField[];
}

/** Marks an object as a Go struct of the given type. */
export const STRUCT: unique symbol = Symbol.for("mf.template.struct") as never;
/** A `String() string` method: used when the value is printed (`{{ . }}`, `%v`, `%s`), never by `json`. */
export const STRINGER: unique symbol = Symbol.for("mf.template.stringer") as never;

interface Tagged {
  [STRUCT]?: StructType;
  [STRINGER]?: () => string;
}

/** Builds a struct value: an object with the type's fields (missing ones are nil) and hidden type info. */
export function goStruct<T extends Record<string, unknown>>(type: StructType, values: T, stringer?: () => string): T {
  const o: Record<string, unknown> = {};
  for (const f of type.fields) o[f.name] = values[f.name] ?? null;
  Object.defineProperty(o, STRUCT, { value: type, enumerable: false });
  if (stringer) Object.defineProperty(o, STRINGER, { value: stringer, enumerable: false });
  return o as T;
}

/** Gives any object (a map or a struct) a `String()` method for printing. Returns the same object. */
export function withStringer<T extends object>(value: T, stringer: () => string): T {
  Object.defineProperty(value, STRINGER, { value: stringer, enumerable: false, configurable: true });
  return value;
}

export type Kind = "invalid" | "nil" | "bool" | "int" | "float" | "string" | "slice" | "map" | "struct" | "func";

export function kindOf(v: unknown): Kind {
  switch (typeof v) {
    case "undefined":
      return "invalid";
    case "boolean":
      return "bool";
    case "string":
      return "string";
    case "number":
      return Number.isSafeInteger(v) ? "int" : "float";
    case "bigint":
      return "int";
    case "function":
      return "func";
    case "object":
      if (v === null) return "nil";
      if (Array.isArray(v)) return "slice";
      if (v instanceof GoFloat) return "float";
      if ((v as Tagged)[STRUCT]) return "struct";
      return "map";
    default:
      return "nil";
  }
}

export function structType(v: unknown): StructType | undefined {
  return v !== null && typeof v === "object" ? (v as Tagged)[STRUCT] : undefined;
}

export function stringerOf(v: unknown): (() => string) | undefined {
  return v !== null && typeof v === "object" ? (v as Tagged)[STRINGER] : undefined;
}

/** The number inside an int or float value. */
export function num(v: unknown): number {
  if (v instanceof GoFloat) return v.value;
  if (typeof v === "bigint") return Number(v);
  return v as number;
}

/** Go type name, as `%T` and error messages print it. */
export function typeName(v: unknown): string {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return "<nil>";
    case "bool":
      return "bool";
    case "int":
      return "int";
    case "float":
      return "float64";
    case "string":
      return "string";
    case "slice":
      return "[]interface {}";
    case "map":
      return "map[string]interface {}";
    case "struct":
      return structType(v)!.name;
    case "func":
      return "func(...interface {}) (interface {}, error)";
  }
}

/** Own keys of a map whose value is not undefined, in Go's order (sorted). */
export function mapKeys(m: object): string[] {
  const keys: string[] = [];
  for (const k of Object.keys(m)) if ((m as Record<string, unknown>)[k] !== undefined) keys.push(k);
  return keys.sort(compareStrings);
}

/** Go compares strings bytewise (UTF-8); comparing code points gives the same order. */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : 1;
}

/** Map lookup with missingkey=zero on `map[string]any`: absent → nil. */
export function mapGet(m: object, key: string): unknown {
  if (!Object.prototype.hasOwnProperty.call(m, key)) return null;
  const v = (m as Record<string, unknown>)[key];
  return v === undefined ? null : v;
}

/** Go's truth: false, 0, nil, the empty string, list or map are false; structs and funcs are true. */
export function truth(v: unknown): boolean {
  switch (kindOf(v)) {
    case "invalid":
    case "nil":
      return false;
    case "bool":
      return v as boolean;
    case "int":
    case "float":
      return num(v) !== 0;
    case "string":
      return (v as string).length > 0;
    case "slice":
      return (v as unknown[]).length > 0;
    case "map":
      return mapKeys(v as object).length > 0;
    case "struct":
    case "func":
      return true;
  }
}

/** UTF-8 byte length, as Go's len of a string. */
export function byteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
