/**
 * Edits of the access file's `apikeys` list (`mf registry key add|revoke`) that change only the lines of
 * the entry added or removed: the new entry's text is spliced in after the list's last item (at the
 * list's own indentation), a revoked entry's lines are cut out, and every other byte of the file
 * (comments, their alignment, `[pull]` flow lists, long key lines, quoting) stays as written. The
 * positions come from the `yaml` package's parsed document (node ranges); the result is parsed again and
 * must hold exactly the keys it should. New secrets are random (`mfk_` + 32 bytes base64url) and only
 * their sha256 is written; the secret itself is returned once, to be shown once.
 */
import { randomBytes } from "node:crypto";
import YAML from "yaml";
import { AuthError } from "../../core/errors.js";
import { AccessPolicy, apiKeyHash } from "./access.js";

export interface NewApiKey {
  /** the file's new text */
  text: string;
  /** the secret: shown once, never stored */
  secret: string;
}

function bad(source: string, what: string): never {
  throw new AuthError("BAD_REQUEST", `${source}: ${what}`);
}

function parse(text: string, source: string): YAML.Document.Parsed {
  const d = YAML.parseDocument(text);
  if (d.errors.length) bad(source, `not valid YAML: ${d.errors[0]!.message.split("\n")[0]}`);
  return d;
}

/** Start of the line holding `pos`. */
function lineStart(text: string, pos: number): number {
  return text.lastIndexOf("\n", pos - 1) + 1;
}

/** Just past the newline that ends the line holding `pos` (or the text's end). */
function lineEnd(text: string, pos: number): number {
  const nl = text.indexOf("\n", pos);
  return nl < 0 ? text.length : nl + 1;
}

/** The `apikeys` pair of the top-level mapping, or undefined. */
function apikeysPair(d: YAML.Document.Parsed, source: string): YAML.Pair<YAML.Scalar, unknown> | undefined {
  if (d.contents === null || (YAML.isScalar(d.contents) && d.contents.value === null)) return undefined;
  if (!YAML.isMap(d.contents)) bad(source, "expected a mapping with anonymous, keys and apikeys");
  return d.contents.items.find((p) => YAML.isScalar(p.key) && p.key.value === "apikeys") as YAML.Pair<YAML.Scalar, unknown> | undefined;
}

/** Where an item of a block sequence starts: the column of its `-` and of its content. */
function itemColumns(text: string, item: YAML.Node, source: string): { dashAt: number; dash: number; content: number } {
  const start = item.range![0];
  const from = lineStart(text, start);
  const before = text.slice(from, start);
  const m = /^( *)-( +)$/.exec(before);
  if (!m) bad(source, "apikeys must be a block list (one `- id: …` entry per key) to be edited by mf registry key");
  return { dashAt: from + m[1]!.length, dash: m[1]!.length, content: before.length };
}

/** A string as a YAML scalar that reads back as this same string. */
function scalar(s: string): string {
  const plain = YAML.stringify(s, { lineWidth: 0 }).trimEnd();
  return plain.includes("\n") ? JSON.stringify(s) : plain;
}

/** The lines of one `apikeys` entry, its `-` at column `dash`, its keys at column `content`. */
function entryText(entry: { id: string; hash: string; created: string; rules: Record<string, string[]>; catalog?: boolean }, dash: number, content: number, eol: string): string {
  const pad = " ".repeat(content);
  const lines = [
    `${" ".repeat(dash)}-${" ".repeat(content - dash - 1)}id: ${scalar(entry.id)}`,
    `${pad}hash: ${entry.hash}`,
    `${pad}created: ${scalar(entry.created)}`,
  ];
  const globs = Object.entries(entry.rules);
  if (globs.length) {
    lines.push(`${pad}access:`);
    for (const [glob, actions] of globs) lines.push(`${pad}  ${JSON.stringify(glob)}: [${actions.map(scalar).join(", ")}]`);
  }
  if (entry.catalog) lines.push(`${pad}catalog: true`);
  return lines.map((l) => l + eol).join("");
}

/** Parses an edit's result: it must hold exactly the API keys `expectIds` (in order), and the same keys and anonymous rules as before. */
function verify(out: string, source: string, expectIds: string[], before: AccessPolicy): AccessPolicy {
  const p = AccessPolicy.parse(out, source);
  const ids = p.apiKeys.map((k) => k.id);
  const same = ids.length === expectIds.length && ids.every((id, i) => id === expectIds[i]);
  if (!same || p.keys.length !== before.keys.length || p.anonymous.rules.length !== before.anonymous.rules.length) {
    bad(source, "could not edit apikeys without touching the rest of the file; edit it by hand");
  }
  return p;
}

/** Adds an API key `id` with `rules` (glob → actions); refuses a duplicate id. */
export function addApiKey(text: string, id: string, rules: Record<string, string[]>, opts: { catalog?: boolean; now?: Date; source?: string } = {}): NewApiKey {
  const source = opts.source ?? "access file";
  const current = AccessPolicy.parse(text, source);
  if (current.apiKeys.some((k) => k.id === id)) bad(source, `an API key "${id}" already exists (revoke it first)`);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) bad(source, `API key id "${id}": 1-64 of [A-Za-z0-9._-]`);
  const secret = `mfk_${randomBytes(32).toString("base64url")}`;
  const hash = apiKeyHash(secret);
  const entry = { id, hash, created: (opts.now ?? new Date()).toISOString(), rules, catalog: opts.catalog };
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const d = parse(text, source);
  const pair = apikeysPair(d, source);
  const list = pair?.value;
  let out: string;
  if (YAML.isSeq(list) && !list.flow && list.items.length) {
    // after the last item, at the items' own indentation
    const items = list.items as YAML.Node[];
    const { dash, content } = itemColumns(text, items[0]!, source);
    const last = items[items.length - 1]!;
    let at = last.range![2];
    let head = text.slice(0, at);
    if (!head.endsWith("\n")) {
      at = lineEnd(text, at);
      head = text.slice(0, at);
      if (!head.endsWith("\n")) head += eol;
    }
    out = head + entryText(entry, dash, content, eol) + text.slice(at);
  } else if (pair) {
    // `apikeys:` with no list yet (`apikeys:`, `apikeys: []`, `apikeys: ~`): the list goes under the key
    const empty = list === null || (YAML.isScalar(list) && list.value === null) || (YAML.isSeq(list) && list.items.length === 0);
    if (!empty) bad(source, "apikeys must be a block list (one `- id: …` entry per key) to be edited by mf registry key");
    const keyStart = pair.key.range![0];
    const col = keyStart - lineStart(text, keyStart);
    const node = list as YAML.Node | null;
    const v0 = node?.range?.[0] ?? pair.key.range![1];
    const v1 = node?.range?.[1] ?? v0;
    // the explicit empty value (`[]`, `~`) goes; a comment after it on the line stays
    const kept = v1 > v0 ? text.slice(0, v0).replace(/ +$/, "") : text.slice(0, v0);
    const edited = kept + text.slice(v1);
    const at = lineEnd(edited, kept.length);
    const head = edited.slice(0, at);
    out = (head.endsWith("\n") ? head : head + eol) + entryText(entry, col + 2, col + 4, eol) + edited.slice(at);
  } else {
    // no apikeys section: one at the end, indented like the keys list when there is one
    const keys = d.contents && YAML.isMap(d.contents) ? d.contents.get("keys", true) : undefined;
    const cols = YAML.isSeq(keys) && !keys.flow && keys.items.length ? itemColumns(text, keys.items[0] as YAML.Node, source) : { dash: 2, content: 4 };
    const head = text.length === 0 || text.endsWith("\n") ? text : text + eol;
    out = `${head}apikeys:${eol}${entryText(entry, cols.dash, cols.content, eol)}`;
  }
  const p = verify(out, source, [...current.apiKeys.map((k) => k.id), id], current);
  if (p.findApiKey(secret)?.id !== id) bad(source, "could not add the key without touching the rest of the file; edit it by hand");
  return { text: out, secret };
}

/** Removes the API key `id`, its lines only; throws when there is none. */
export function revokeApiKey(text: string, id: string, source = "access file"): string {
  const current = AccessPolicy.parse(text, source);
  if (!current.apiKeys.some((k) => k.id === id)) bad(source, `no API key "${id}"`);
  const d = parse(text, source);
  const list = apikeysPair(d, source)?.value;
  if (!YAML.isSeq(list) || list.flow) bad(source, "apikeys must be a block list (one `- id: …` entry per key) to be edited by mf registry key");
  const item = (list.items as YAML.Node[]).find((it) => YAML.isMap(it) && it.get("id") === id);
  if (!item) bad(source, `no API key "${id}"`);
  const { dashAt } = itemColumns(text, item, source);
  const from = lineStart(text, dashAt);
  const end = item.range![2];
  const to = text[end - 1] === "\n" ? end : lineEnd(text, end);
  const out = text.slice(0, from) + text.slice(to);
  verify(out, source, current.apiKeys.map((k) => k.id).filter((k) => k !== id), current);
  return out;
}

/** Parses `--allow "team-a/*=pull,push"` values into rules. */
export function parseAllow(values: string[]): Record<string, string[]> {
  const rules: Record<string, string[]> = {};
  for (const v of values) {
    const eq = v.lastIndexOf("=");
    if (eq <= 0) throw new AuthError("BAD_REQUEST", `--allow "${v}": expected GLOB=ACTIONS, e.g. "team-a/*=pull,push"`);
    const actions = v.slice(eq + 1).split(",").map((a) => a.trim()).filter(Boolean);
    for (const a of actions) if (!["pull", "push", "delete", "*"].includes(a)) throw new AuthError("BAD_REQUEST", `--allow "${v}": unknown action "${a}"`);
    rules[v.slice(0, eq)] = [...new Set([...(rules[v.slice(0, eq)] ?? []), ...actions])];
  }
  return rules;
}
