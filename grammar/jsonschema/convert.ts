/**
 * JSON Schema → GBNF. Every keyword that constrains a value is either honoured exactly or refused
 * with a SchemaUnsupported naming it: the grammar may be stricter than the schema (a fixed property
 * order, no extra properties unless `additionalProperties` allows them, bounded digits, one escape per
 * character), never looser, so every text it admits validates.
 *
 * Covered: `type` (one or a list), `enum`, `const`, `properties`, `required`, `additionalProperties`,
 * `items` (a schema, or the older tuple list) with `additionalItems`, `prefixItems`, `minItems`,
 * `maxItems`, `minLength`, `maxLength`, `pattern` (see regex.ts), `format` (date, time, date-time,
 * uuid, email, uri, hostname, ipv4), `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`
 * (draft 4's booleans too), `anyOf`, `oneOf` (when its alternatives cannot overlap), `allOf` (merged),
 * local `$ref` into `$defs` / `definitions` / any pointer, recursion included, and OpenAPI's
 * `nullable`. Annotations (`title`, `description`, `default`, `examples`, …) are ignored, as are
 * keywords JSON Schema does not define. Without `type`, the keywords present imply it (`properties`
 * → object, `items` → array, …), as llama.cpp does.
 */
import { MfError } from "../../core/errors.js";
import { cls, lit, repeat } from "./gbnf.js";
import { integerRange, numberRange } from "./numbers.js";
import { RegexInvalid, RegexUnsupported, patternToGbnf } from "./regex.js";

export class SchemaUnsupported extends MfError {
  constructor(readonly keyword: string, readonly path: string, reason: string) {
    super("BAD_REQUEST", `JSON Schema keyword "${keyword}"${path ? ` at ${path}` : ""}: ${reason}`, { detail: { keyword, path } });
  }
}

type Schema = Record<string, unknown>;
type JsonType = "null" | "boolean" | "object" | "array" | "number" | "integer" | "string";
const TYPES: readonly JsonType[] = ["null", "boolean", "object", "array", "number", "integer", "string"];

/** Keywords that validate and that no grammar here can express. */
const REFUSED: Record<string, string> = {
  not: "a grammar cannot exclude a sub-schema",
  if: "conditional schemas are not supported",
  then: "conditional schemas are not supported",
  else: "conditional schemas are not supported",
  patternProperties: "property names matched by pattern are not supported",
  propertyNames: "constraints on property names are not supported",
  dependencies: "dependencies between properties are not supported",
  dependentRequired: "dependencies between properties are not supported",
  dependentSchemas: "dependencies between properties are not supported",
  uniqueItems: "a grammar cannot require distinct items",
  contains: "a grammar cannot require one matching item anywhere",
  minContains: "a grammar cannot count matching items",
  maxContains: "a grammar cannot count matching items",
  multipleOf: "a grammar cannot express divisibility",
  minProperties: "counting properties is not supported",
  maxProperties: "counting properties is not supported",
  unevaluatedProperties: "unevaluatedProperties is not supported",
  unevaluatedItems: "unevaluatedItems is not supported",
  $dynamicRef: "dynamic references are not supported",
  $recursiveRef: "recursive references by anchor are not supported",
  contentSchema: "contentSchema is not supported",
};

/** Keywords that only annotate, or hold sub-schemas reached by $ref. */
const CONSTRAINING = new Set([
  "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
  "additionalItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum",
  "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref", "nullable",
]);

/** Past these the schema is refused rather than turned into a grammar too large to sample with. */
export const LIMITS = { repeat: 10_000, depth: 64, rules: 5_000, grammarChars: 2_000_000 };

const FORMATS: Record<string, string> = (() => {
  const d2 = "[0-9]{2}";
  const date =
    '[0-9]{4} "-" ((("01" | "03" | "05" | "07" | "08" | "10" | "12") "-" ("0" [1-9] | [12] [0-9] | "3" [01])) | (("04" | "06" | "09" | "11") "-" ("0" [1-9] | [12] [0-9] | "30")) | ("02" "-" ("0" [1-9] | "1" [0-9] | "2" [0-8])))';
  const time = '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,9})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])';
  const hex = "[0-9a-f]";
  // host names stay within 253 characters: at most five labels of at most 48 characters each
  const label = "[a-zA-Z0-9] ([a-zA-Z0-9-]{0,46} [a-zA-Z0-9])?";
  const octet = '("25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9]? [0-9])';
  const atext = "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]";
  void d2;
  return {
    date,
    time,
    "date-time": `${date} "T" ${time}`,
    uuid: `${hex}{8} "-" ${hex}{4} "-" ${hex}{4} "-" ${hex}{4} "-" ${hex}{12}`,
    email: `${atext}{1,64} ("." ${atext}{1,64}){0,3} "@" ${label} ("." ${label}){1,4}`,
    hostname: `${label} ("." ${label}){0,4}`,
    ipv4: `${octet} "." ${octet} "." ${octet} "." ${octet}`,
    uri: `[a-zA-Z] [a-zA-Z0-9+.-]{0,15} "://" ${label} ("." ${label}){0,4} (":" [0-9]{1,5})? ("/" [a-zA-Z0-9._~!$&'()*+,;=:@-]{0,64}){0,16} ("?" [a-zA-Z0-9._~!$&'()*+,;=:@/?-]{0,256})? ("#" [a-zA-Z0-9._~!$&'()*+,;=:@/?-]{0,256})?`,
  };
})();

const isObj = (x: unknown): x is Schema => typeof x === "object" && x !== null && !Array.isArray(x);
const canon = (v: unknown): string => JSON.stringify(sortKeys(v));
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObj(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

function typeOf(v: unknown): JsonType {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v as JsonType;
}

/**
 * What a JSON string never holds raw: controls, quote, backslash, DEL (as llama.cpp's `char`), and
 * what is not a Unicode scalar value: surrogates and code points past U+10FFFF, which llama.cpp's
 * decoder yields for invalid UTF-8 (a lead byte F5–F7), so that a grammar never admits such bytes.
 */
const NOT_RAW: [number, number][] = [[0, 0x1f], [0x22, 0x22], [0x5c, 0x5c], [0x7f, 0x7f], [0xd800, 0xdfff], [0x110000, 0x3fffff]];

const SPACE = "space";
const CHAR = "char";

/** Converts a JSON Schema (draft 4 to 2020-12) to GBNF text whose root rule admits the JSON texts. */
export function schemaToGbnf(schema: unknown): string {
  return new Converter(schema).run();
}

class Converter {
  private readonly rules = new Map<string, string>();
  private readonly refRules = new Map<string, string>();

  constructor(private readonly root: unknown) {}

  run(): string {
    if (!isObj(this.root) && typeof this.root !== "boolean") throw new SchemaUnsupported("(schema)", "", "a schema must be an object or a boolean");
    this.define(SPACE, '" "?');
    const body = this.visit(this.root, "", 0);
    this.rules.set("root", `${body} ${SPACE}`);
    const order = ["root", ...[...this.rules.keys()].filter((k) => k !== "root").sort()];
    const text = order.map((k) => `${k} ::= ${this.rules.get(k)}`).join("\n") + "\n";
    if (text.length > LIMITS.grammarChars || this.rules.size > LIMITS.rules) throw new SchemaUnsupported("(schema)", "", "the schema is too large to turn into a grammar");
    return text;
  }

  private define(name: string, body: string): string {
    if (!this.rules.has(name)) this.rules.set(name, body);
    return name;
  }

  private fresh(hint: string, body: string): string {
    const base = hint.replace(/[^A-Za-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase() || "r";
    let name = base;
    for (let i = 1; this.rules.has(name) && this.rules.get(name) !== body; i++) name = `${base}-${i}`;
    this.rules.set(name, body);
    if (this.rules.size > LIMITS.rules) throw new SchemaUnsupported("(schema)", "", "the schema is too large to turn into a grammar");
    return name;
  }

  /** A rule name no rule has yet, reserved (for a reference being converted). */
  private unique(hint: string): string {
    const base = hint.replace(/[^A-Za-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase() || "r";
    let name = base;
    for (let i = 1; this.rules.has(name); i++) name = `${base}-${i}`;
    this.rules.set(name, '""');
    return name;
  }

  private count(n: unknown, keyword: string, path: string): number {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw new SchemaUnsupported(keyword, path, "must be a non-negative integer");
    if (n > LIMITS.repeat) throw new SchemaUnsupported(keyword, path, `values above ${LIMITS.repeat} are not supported`);
    return n;
  }

  // -------------------------------------------------------------------------------------------------
  // $ref

  private resolve(ref: string, path: string): unknown {
    if (!ref.startsWith("#")) throw new SchemaUnsupported("$ref", path, `only local references ("#/…") are supported, not ${JSON.stringify(ref)}`);
    let cur: unknown = this.root;
    const ptr = ref.slice(1);
    if (ptr === "") return cur;
    if (!ptr.startsWith("/")) throw new SchemaUnsupported("$ref", path, `${JSON.stringify(ref)} is not a JSON pointer`);
    for (const raw of ptr.slice(1).split("/")) {
      const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (Array.isArray(cur) && /^\d+$/.test(key)) cur = cur[Number(key)];
      else if (isObj(cur) && Object.hasOwn(cur, key)) cur = cur[key];
      else throw new SchemaUnsupported("$ref", path, `${JSON.stringify(ref)} points at nothing`);
    }
    return cur;
  }

  /** A schema with its $ref replaced by the target, merged with its siblings. */
  private deref(s: Schema, path: string, depth: number): Schema {
    let cur = s;
    for (let hops = 0; typeof cur.$ref === "string"; hops++) {
      if (hops > LIMITS.depth || depth > LIMITS.depth) throw new SchemaUnsupported("$ref", path, "references nest too deep (or loop inside allOf)");
      const target = this.resolve(cur.$ref, path);
      const { $ref: _ignored, ...rest } = cur;
      const t = target === true ? {} : target === false ? { not: {} } : target;
      if (!isObj(t)) throw new SchemaUnsupported("$ref", path, "the target is not a schema");
      cur = constrains(rest) ? this.merge(t, rest, path, depth + 1) : t;
    }
    return cur;
  }

  // -------------------------------------------------------------------------------------------------
  // allOf

  private flattenAllOf(s: Schema, path: string, depth: number): Schema {
    if (!Array.isArray(s.allOf)) {
      if (s.allOf !== undefined) throw new SchemaUnsupported("allOf", path, "must be a list of schemas");
      return s;
    }
    const { allOf, ...rest } = s;
    let acc: Schema = rest;
    (allOf as unknown[]).forEach((part, i) => {
      const p = part === true ? {} : part;
      if (part === false) throw new SchemaUnsupported("allOf", `${path}/allOf/${i}`, "false admits no value");
      if (!isObj(p)) throw new SchemaUnsupported("allOf", `${path}/allOf/${i}`, "must be a schema");
      acc = this.merge(acc, this.flattenAllOf(this.deref(p, `${path}/allOf/${i}`, depth + 1), `${path}/allOf/${i}`, depth + 1), path, depth + 1);
    });
    return acc;
  }

  /** One schema that admits exactly what both admit, or SchemaUnsupported. */
  private merge(a0: Schema, b0: Schema, path: string, depth: number): Schema {
    if (depth > LIMITS.depth) throw new SchemaUnsupported("allOf", path, "schemas nest too deep");
    const a = this.flattenAllOf(this.deref(a0, path, depth), path, depth);
    const b = this.flattenAllOf(this.deref(b0, path, depth), path, depth);
    const out: Schema = { ...a };
    for (const [k, bv] of Object.entries(b)) {
      if (!(k in out)) {
        out[k] = bv;
        continue;
      }
      const av = out[k];
      if (canon(av) === canon(bv)) continue;
      switch (k) {
        case "type": {
          const ta = typeList(av, path);
          const tb = typeList(bv, path);
          const both = ta.filter((t) => tb.includes(t) || (t === "integer" && tb.includes("number")));
          for (const t of tb) if (t === "integer" && ta.includes("number") && !both.includes("integer")) both.push("integer");
          if (!both.length) throw new SchemaUnsupported("allOf", path, "its schemas allow no common type");
          out.type = both;
          break;
        }
        case "enum":
        case "const": {
          const ea = k === "const" ? [av] : (av as unknown[]);
          const eb = new Set((k === "const" ? [bv] : (bv as unknown[])).map(canon));
          out[k === "const" ? "enum" : k] = ea.filter((v) => eb.has(canon(v)));
          if (k === "const") delete out.const;
          break;
        }
        case "required":
          out.required = [...new Set([...(av as string[]), ...(bv as string[])])];
          break;
        case "minimum": case "minLength": case "minItems": case "exclusiveMinimum":
          if (typeof av === "boolean" || typeof bv === "boolean") throw new SchemaUnsupported(k, path, "cannot merge draft-4 boolean bounds in allOf");
          out[k] = Math.max(av as number, bv as number);
          break;
        case "maximum": case "maxLength": case "maxItems": case "exclusiveMaximum":
          if (typeof av === "boolean" || typeof bv === "boolean") throw new SchemaUnsupported(k, path, "cannot merge draft-4 boolean bounds in allOf");
          out[k] = Math.min(av as number, bv as number);
          break;
        case "items":
        case "additionalItems":
          if (Array.isArray(av) || Array.isArray(bv)) throw new SchemaUnsupported("allOf", path, "cannot merge two tuple schemas");
          out[k] = { allOf: [av, bv] };
          break;
        case "properties":
        case "additionalProperties":
          break; // merged together below
        default:
          if (REFUSED[k] || !CONSTRAINING.has(k)) break;
          throw new SchemaUnsupported(k, path, "two different values under allOf cannot be merged");
      }
    }
    if (isObj(a.properties) || isObj(b.properties) || a.additionalProperties !== undefined || b.additionalProperties !== undefined) {
      const pa = isObj(a.properties) ? a.properties : {};
      const pb = isObj(b.properties) ? b.properties : {};
      const props: Schema = {};
      const side = (p: Schema, s: Schema, k: string): unknown => (Object.hasOwn(p, k) ? p[k] : (s.additionalProperties ?? true));
      for (const k of [...new Set([...Object.keys(pa), ...Object.keys(pb)])]) {
        const x = side(pa, a, k);
        const y = side(pb, b, k);
        if (x === false || y === false) {
          if (((out.required as string[] | undefined) ?? []).includes(k)) throw new SchemaUnsupported("allOf", path, `property "${k}" is required by one schema and forbidden by another`);
          continue;
        }
        props[k] = x === true ? y : y === true ? x : { allOf: [x, y] };
      }
      out.properties = props;
      const xa = a.additionalProperties ?? true;
      const xb = b.additionalProperties ?? true;
      if (a.additionalProperties === undefined && b.additionalProperties === undefined) delete out.additionalProperties;
      else out.additionalProperties = xa === false || xb === false ? false : xa === true ? xb : xb === true ? xa : { allOf: [xa, xb] };
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------------
  // Visiting: returns a GBNF expression (often a rule name)

  private visit(schema0: unknown, path: string, depth: number): string {
    if (depth > LIMITS.depth) throw new SchemaUnsupported("(schema)", path, `schemas nested deeper than ${LIMITS.depth} are not supported`);
    if (schema0 === true) return this.anyValue();
    if (schema0 === false) throw new SchemaUnsupported("(schema)", path, "false admits no value");
    if (!isObj(schema0)) throw new SchemaUnsupported("(schema)", path, "a schema must be an object or a boolean");
    for (const k of Object.keys(schema0)) if (REFUSED[k] && !(k === "uniqueItems" && schema0[k] === false)) throw new SchemaUnsupported(k, path, REFUSED[k]);

    // a bare reference becomes a rule of its own, so recursive schemas work
    if (typeof schema0.$ref === "string" && !constrains({ ...schema0, $ref: undefined })) {
      const ref = schema0.$ref;
      const known = this.refRules.get(ref);
      if (known) return known;
      const name = this.unique(`ref-${ref.replace(/^#\/?/, "").split("/").pop() || "root"}`);
      this.refRules.set(ref, name);
      const target = this.resolve(ref, path);
      this.rules.set(name, this.visit(target, ref.slice(1), depth + 1));
      return name;
    }
    if (schema0.$ref !== undefined && typeof schema0.$ref !== "string") throw new SchemaUnsupported("$ref", path, "must be a string");

    const schema = this.flattenAllOf(this.deref(schema0, path, depth), path, depth);
    for (const k of Object.keys(schema)) if (REFUSED[k] && !(k === "uniqueItems" && schema[k] === false)) throw new SchemaUnsupported(k, path, REFUSED[k]);

    for (const key of ["anyOf", "oneOf"] as const) {
      if (schema[key] === undefined) continue;
      if (!Array.isArray(schema[key]) || !schema[key].length) throw new SchemaUnsupported(key, path, "must be a non-empty list of schemas");
      const { [key]: branches, ...rest } = schema;
      const merged = (branches as unknown[]).map((b, i) => {
        const bp = `${path}/${key}/${i}`;
        if (b === false) return null;
        const bs = b === true ? {} : b;
        if (!isObj(bs)) throw new SchemaUnsupported(key, bp, "must be a schema");
        return constrains(rest) ? this.merge(rest, bs, bp, depth + 1) : bs;
      });
      const live = merged.filter((m): m is Schema => m !== null);
      if (!live.length) throw new SchemaUnsupported(key, path, "no alternative admits a value");
      if (key === "oneOf") {
        const resolved = live.map((m, i) => this.flattenAllOf(this.deref(m, `${path}/oneOf/${i}`, depth + 1), path, depth + 1));
        for (let i = 0; i < resolved.length; i++)
          for (let j = i + 1; j < resolved.length; j++)
            if (!disjoint(resolved[i]!, resolved[j]!))
              throw new SchemaUnsupported("oneOf", path, `alternatives ${i} and ${j} may both match one value, which a grammar cannot forbid; use anyOf, or make them differ in type, const or enum`);
      }
      const alts = live.map((m, i) => this.visit(m, `${path}/${key}/${i}`, depth + 1));
      return alts.length === 1 ? alts[0]! : `(${[...new Set(alts)].join(" | ")})`;
    }

    let types = this.types(schema, path);
    if (schema.nullable === true && !types.includes("null")) types = [...types, "null"];

    if (schema.const !== undefined || schema.enum !== undefined) {
      const values = schema.const !== undefined ? [schema.const] : schema.enum;
      if (!Array.isArray(values)) throw new SchemaUnsupported("enum", path, "must be a list");
      const structural = ["properties", "items", "prefixItems", "additionalProperties", "additionalItems", "required"].find((k) => schema[k] !== undefined);
      if (structural && values.some((v) => typeof v === "object" && v !== null))
        throw new SchemaUnsupported("enum", path, `object or array values together with "${structural}" are not supported`);
      const ok = values.filter((v) => this.scalarOk(v, schema, types, path));
      if (!ok.length) throw new SchemaUnsupported(schema.const !== undefined ? "const" : "enum", path, "no listed value satisfies the rest of the schema");
      const lits = [...new Set(ok.map((v) => lit(JSON.stringify(v))))];
      return lits.length === 1 ? lits[0]! : `(${lits.join(" | ")})`;
    }

    const alts: string[] = [];
    // integer is a subset of number: with both allowed, number covers it
    for (const t of types) {
      if (t === "integer" && types.includes("number")) continue;
      alts.push(this.typed(t, schema, path, depth));
    }
    return alts.length === 1 ? alts[0]! : `(${alts.join(" | ")})`;
  }

  /** The JSON types a schema admits: its `type`, or what its keywords imply, or all. */
  private types(schema: Schema, path: string): JsonType[] {
    if (schema.type !== undefined) return typeList(schema.type, path);
    const implied = new Set<JsonType>();
    const has = (...ks: string[]): boolean => ks.some((k) => schema[k] !== undefined);
    if (has("properties", "required", "additionalProperties")) implied.add("object");
    if (has("items", "prefixItems", "additionalItems", "minItems", "maxItems")) implied.add("array");
    if (has("minLength", "maxLength", "pattern", "format")) implied.add("string");
    if (has("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")) implied.add("number");
    return implied.size ? [...implied] : (TYPES.filter((t) => t !== "integer") as JsonType[]);
  }

  /** Whether an enum/const value satisfies the schema's type and scalar keywords. */
  private scalarOk(v: unknown, s: Schema, types: JsonType[], path: string): boolean {
    const t = typeOf(v);
    if (s.type !== undefined || s.nullable !== undefined) {
      if (!(types.includes(t) || (t === "integer" && types.includes("number")))) return false;
    }
    if (typeof v === "string") {
      const len = [...v].length;
      if (typeof s.minLength === "number" && len < s.minLength) return false;
      if (typeof s.maxLength === "number" && len > s.maxLength) return false;
      if (typeof s.pattern === "string") {
        let re: RegExp;
        try {
          re = new RegExp(s.pattern, "u");
        } catch {
          throw new SchemaUnsupported("pattern", path, "is not a valid regular expression");
        }
        if (!re.test(v)) return false;
      }
      if (s.format !== undefined) throw new SchemaUnsupported("format", path, "together with enum or const is not supported");
    }
    if (typeof v === "number") {
      const b = bounds(s, path);
      if (b.min !== null && (b.minStrict ? v <= b.min : v < b.min)) return false;
      if (b.max !== null && (b.maxStrict ? v >= b.max : v > b.max)) return false;
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === "number" && v.length < s.minItems) return false;
      if (typeof s.maxItems === "number" && v.length > s.maxItems) return false;
    }
    return true;
  }

  private typed(t: JsonType, s: Schema, path: string, depth: number): string {
    switch (t) {
      case "null":
        return '"null"';
      case "boolean":
        return '("true" | "false")';
      case "string":
        return this.string(s, path);
      case "integer":
      case "number":
        return this.number(t, s, path);
      case "array":
        return this.array(s, path, depth);
      case "object":
        return this.object(s, path, depth);
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Scalars

  private char(): string {
    return this.define(CHAR, `${cls(NOT_RAW, true)} | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})`);
  }

  private string(s: Schema, path: string): string {
    const has = (k: string): boolean => s[k] !== undefined;
    if (has("pattern") && (has("minLength") || has("maxLength") || has("format")))
      throw new SchemaUnsupported("pattern", path, "together with minLength, maxLength or format is not supported");
    if (has("format") && (has("minLength") || has("maxLength")))
      throw new SchemaUnsupported("format", path, "together with minLength or maxLength is not supported");
    if (has("pattern")) {
      if (typeof s.pattern !== "string") throw new SchemaUnsupported("pattern", path, "must be a string");
      try {
        new RegExp(s.pattern, "u");
      } catch {
        throw new SchemaUnsupported("pattern", path, `${JSON.stringify(s.pattern)} is not a valid regular expression`);
      }
      try {
        return `"\\"" ${patternToGbnf(s.pattern, this.char())} "\\""`;
      } catch (e) {
        if (e instanceof RegexUnsupported || e instanceof RegexInvalid) throw new SchemaUnsupported("pattern", path, e.message);
        throw e;
      }
    }
    if (has("format")) {
      const f = FORMATS[String(s.format)];
      if (!f) throw new SchemaUnsupported("format", path, `"${String(s.format)}" is not supported (supported: ${Object.keys(FORMATS).join(", ")})`);
      return this.define(`${String(s.format)}-string`, `"\\"" ${f} "\\""`);
    }
    const min = has("minLength") ? this.count(s.minLength, "minLength", path) : 0;
    const max = has("maxLength") ? this.count(s.maxLength, "maxLength", path) : null;
    if (max !== null && max < min) throw new SchemaUnsupported("maxLength", path, "is below minLength");
    if (min === 0 && max === null) return this.define("string", `"\\"" ${this.char()}* "\\""`);
    return `"\\"" ${repeat(this.char(), min, max)} "\\""`;
  }

  private number(t: "integer" | "number", s: Schema, path: string): string {
    const b = bounds(s, path);
    if (b.min === null && b.max === null) {
      if (t === "integer") return this.define("integer", '"-"? ("0" | [1-9] [0-9]{0,15})');
      return this.define("number", '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})?');
    }
    try {
      if (t === "integer") {
        const lo = b.min === null ? null : BigInt(b.minStrict ? Math.floor(b.min) + 1 : Math.ceil(b.min));
        const hi = b.max === null ? null : BigInt(b.maxStrict ? Math.ceil(b.max) - 1 : Math.floor(b.max));
        const g = integerRange(lo, hi);
        if (g === null) throw new SchemaUnsupported("maximum", path, "no integer lies within the bounds");
        return g;
      }
      const g = numberRange(b.min, b.minStrict, b.max, b.maxStrict);
      if (g === null) throw new SchemaUnsupported("maximum", path, "no number lies within the bounds");
      return g;
    } catch (e) {
      if (e instanceof RangeError) throw new SchemaUnsupported(b.min !== null ? "minimum" : "maximum", path, e.message);
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Structures

  private array(s: Schema, path: string, depth: number): string {
    let tuple: unknown[] = [];
    let rest: unknown;
    if (Array.isArray(s.prefixItems)) {
      tuple = s.prefixItems;
      rest = s.items;
    } else if (Array.isArray(s.items)) {
      tuple = s.items;
      rest = s.additionalItems;
    } else if (isObj(s.prefixItems)) {
      rest = s.prefixItems; // llama.cpp reads a lone schema under prefixItems as items
    } else rest = s.items;
    // with a tuple, absent rest means no more items (stricter than the schema, never looser)
    const restAllowed = tuple.length ? rest !== undefined && rest !== false : rest !== false;
    const min = s.minItems !== undefined ? this.count(s.minItems, "minItems", path) : 0;
    const max = s.maxItems !== undefined ? this.count(s.maxItems, "maxItems", path) : null;
    if (max !== null && max < min) throw new SchemaUnsupported("maxItems", path, "is below minItems");
    const k = tuple.length;
    if (max !== null && k > max) throw new SchemaUnsupported("maxItems", path, "is below the number of tuple items");
    const items = tuple.map((x, i) => this.visit(x, `${path}/prefixItems/${i}`, depth + 1));
    const sep = `"," ${SPACE}`;
    let body: string;
    const restMin = Math.max(0, min - k);
    const restMax = max === null ? null : max - k;
    if (!restAllowed && restMin > 0) throw new SchemaUnsupported("minItems", path, "asks for more items than the tuple allows");
    const restItem = restAllowed && restMax !== 0 ? this.visit(rest === undefined ? true : rest, `${path}/items`, depth + 1) : null;
    if (k) {
      body = items.join(` ${sep} `);
      if (restItem) body += ` ${repeat(`(${sep} ${restItem})`, restMin, restMax)}`;
    } else if (restItem) {
      const tail = repeat(`(${sep} ${restItem})`, Math.max(0, restMin - 1), restMax === null ? null : restMax - 1);
      const one = tail === '""' ? restItem : `${restItem} ${tail}`;
      body = restMin > 0 ? one : `(${one})?`;
    } else body = "";
    return `"[" ${SPACE} ${body ? body + " " : ""}"]"`;
  }

  private object(s: Schema, path: string, depth: number): string {
    const props = isObj(s.properties) ? s.properties : {};
    if (s.properties !== undefined && !isObj(s.properties)) throw new SchemaUnsupported("properties", path, "must be an object");
    if (s.required !== undefined && (!Array.isArray(s.required) || s.required.some((r) => typeof r !== "string")))
      throw new SchemaUnsupported("required", path, "must be a list of names");
    const required = new Set((s.required as string[] | undefined) ?? []);
    const additional = s.additionalProperties;
    // as llama.cpp: with properties listed and nothing said, no other property is written
    const extra = additional === undefined ? (Object.keys(props).length || required.size ? false : true) : additional;
    const names = [...Object.keys(props)];
    for (const r of required) if (!Object.hasOwn(props, r)) names.push(r);
    const kv = (name: string): string => {
      const sub = Object.hasOwn(props, name) ? props[name] : extra === false ? true : extra;
      const v = this.visit(sub, `${path}/properties/${name}`, depth + 1);
      return `${lit(JSON.stringify(name))} ${SPACE} ":" ${SPACE} ${v}`;
    };
    const sep = `"," ${SPACE}`;
    const req = names.filter((n) => required.has(n)).map(kv);
    const opt = names.filter((n) => !required.has(n)).map(kv);
    let extraKv: string | null = null;
    if (extra !== false) {
      const key = this.keyNotIn(names, path);
      extraKv = `${key} ${SPACE} ":" ${SPACE} ${this.visit(extra, `${path}/additionalProperties`, depth + 1)}`;
    }
    // optional properties: any subset, in order, then any extra ones
    let optTail = "";
    if (opt.length || extraKv) {
      let next = extraKv ? this.fresh(`${path}-extra`, `${extraKv} (${sep} ${extraKv})*`) : "";
      for (let i = opt.length - 1; i >= 0; i--) {
        const kvi = opt[i]!;
        next = this.fresh(`${path}-opt-${i}`, next ? `${kvi} (${sep} ${next})? | ${next}` : kvi);
      }
      optTail = next;
    }
    let body = req.join(` ${sep} `);
    if (optTail) body = body ? `${body} (${sep} ${optTail})?` : `(${optTail})?`;
    return `"{" ${SPACE} ${body ? body + " " : ""}"}"`;
  }

  /** A JSON string that is none of `names` (for additional properties). */
  private keyNotIn(names: string[], path: string): string {
    const c = this.char();
    if (!names.length) return this.define("string", `"\\"" ${c}* "\\""`);
    if (names.some((n) => JSON.stringify(n).slice(1, -1).includes("\\")))
      throw new SchemaUnsupported("additionalProperties", path, "together with property names that JSON writes with escapes is not supported");
    // a trie over the names' JSON texts: at each node, end (if no name ends here), leave the trie with
    // a character no name continues with, or follow a branch
    interface Node { end: boolean; next: Map<string, Node> }
    const root: Node = { end: false, next: new Map() };
    for (const n of names) {
      let cur = root;
      for (const ch of JSON.stringify(n).slice(1, -1)) {
        let nx = cur.next.get(ch);
        if (!nx) cur.next.set(ch, (nx = { end: false, next: new Map() }));
        cur = nx;
      }
      cur.end = true;
    }
    const walk = (node: Node): string => {
      const alts: string[] = [];
      if (!node.end) alts.push('"\\""');
      const firsts = [...node.next.keys()];
      // a character that leaves the trie: any JSON char except the branch characters (an escape
      // starts with a backslash, which may itself be a branch)
      const raw = firsts.filter((f) => f.length === 1).map((f) => f.codePointAt(0)!);
      const out = cls([...NOT_RAW, ...raw.filter((x) => x !== 0x5c).map((x) => [x, x] as [number, number])], true);
      const esc = raw.includes(0x5c) ? "" : ` | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})`;
      alts.push(`(${out}${esc}) ${c}* "\\""`);
      for (const [ch, nx] of node.next) alts.push(`${lit(ch)} ${walk(nx)}`);
      return `(${alts.join(" | ")})`;
    };
    return this.fresh("key-not-" + names.join("-").slice(0, 24), `"\\"" ${walk(root)}`);
  }

  private anyValue(): string {
    const c = this.char();
    const v = "value";
    if (this.rules.has(v)) return v;
    this.rules.set(v, "");
    const s = this.define("string", `"\\"" ${c}* "\\""`);
    const n = this.define("number", '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})?');
    const arr = this.define("array", `"[" ${SPACE} (${v} ("," ${SPACE} ${v})*)? "]"`);
    const obj = this.define("object", `"{" ${SPACE} (${s} ${SPACE} ":" ${SPACE} ${v} ("," ${SPACE} ${s} ${SPACE} ":" ${SPACE} ${v})*)? "}"`);
    this.rules.set(v, `(${obj} | ${arr} | ${s} | ${n} | ("true" | "false") | "null") ${SPACE}`);
    return v;
  }
}

/** Whether a schema has any keyword that constrains (apart from annotations). */
function constrains(s: Schema): boolean {
  return Object.keys(s).some((k) => s[k] !== undefined && (CONSTRAINING.has(k) || REFUSED[k]));
}

function typeList(t: unknown, path: string): JsonType[] {
  const list = Array.isArray(t) ? t : [t];
  if (!list.length) throw new SchemaUnsupported("type", path, "an empty list admits no value");
  for (const x of list) if (typeof x !== "string" || !TYPES.includes(x as JsonType)) throw new SchemaUnsupported("type", path, `${JSON.stringify(x)} is not a JSON Schema type`);
  return [...new Set(list as JsonType[])];
}

interface Bounds { min: number | null; minStrict: boolean; max: number | null; maxStrict: boolean }

function bounds(s: Schema, path: string): Bounds {
  const num = (k: string): number | null => {
    const v = s[k];
    if (v === undefined || typeof v === "boolean") return null;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new SchemaUnsupported(k, path, "must be a number");
    return v;
  };
  let min = num("minimum");
  let minStrict = s.exclusiveMinimum === true;
  let max = num("maximum");
  let maxStrict = s.exclusiveMaximum === true;
  const xmin = num("exclusiveMinimum");
  const xmax = num("exclusiveMaximum");
  if (xmin !== null && (min === null || xmin >= min)) [min, minStrict] = [xmin, true];
  if (xmax !== null && (max === null || xmax <= max)) [max, maxStrict] = [xmax, true];
  return { min, minStrict, max, maxStrict };
}

/** Whether no value can match both schemas (conservative: false when unsure). */
function disjoint(a: Schema, b: Schema): boolean {
  const tset = (s: Schema): Set<string> => {
    const vals = s.const !== undefined ? [s.const] : Array.isArray(s.enum) ? s.enum : null;
    if (vals) return new Set(vals.map((v) => (typeOf(v) === "integer" ? "number" : typeOf(v))));
    // without `type`, a value of any type passes the keywords of the other types
    const ts: string[] = s.type !== undefined ? (Array.isArray(s.type) ? s.type : [s.type]).map(String) : [...TYPES];
    if (s.nullable === true) ts.push("null");
    return new Set(ts.map((t) => (t === "integer" ? "number" : t)));
  };
  const ta = tset(a);
  const tb = tset(b);
  if (![...ta].some((t) => tb.has(t))) return true;
  const vals = (s: Schema): string[] | null => (s.const !== undefined ? [canon(s.const)] : Array.isArray(s.enum) ? s.enum.map(canon) : null);
  const va = vals(a);
  const vb = vals(b);
  if (va && vb && !va.some((v) => vb.includes(v))) return true;
  // objects told apart by a required property whose const/enum values differ
  if (isObj(a.properties) && isObj(b.properties)) {
    const ra = new Set((a.required as string[] | undefined) ?? []);
    const rb = new Set((b.required as string[] | undefined) ?? []);
    for (const k of Object.keys(a.properties)) {
      if (!ra.has(k) || !rb.has(k) || !isObj(b.properties[k]) || !isObj(a.properties[k])) continue;
      const x = vals(a.properties[k] as Schema);
      const y = vals(b.properties[k] as Schema);
      if (x && y && !x.some((v) => y.includes(v))) return true;
    }
  }
  return false;
}
