/**
 * Edits of the access file's `apikeys` list (`mf registry key add|revoke`) that keep the rest of the
 * file (comments, key entries, order) as written. New secrets are random (`mfk_` + 32 bytes base64url)
 * and only their sha256 is written; the secret itself is returned once, to be shown once.
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

function doc(text: string, source: string): YAML.Document {
  const d = text.trim() ? YAML.parseDocument(text) : new YAML.Document({});
  if (d.errors.length) throw new AuthError("BAD_REQUEST", `${source}: not valid YAML: ${d.errors[0]!.message.split("\n")[0]}`);
  if (d.contents === null) d.contents = d.createNode({}) as never;
  return d;
}

/** Adds an API key `id` with `rules` (glob → actions); refuses a duplicate id. */
export function addApiKey(text: string, id: string, rules: Record<string, string[]>, opts: { catalog?: boolean; now?: Date; source?: string } = {}): NewApiKey {
  const source = opts.source ?? "access file";
  const current = AccessPolicy.parse(text, source);
  if (current.apiKeys.some((k) => k.id === id)) throw new AuthError("BAD_REQUEST", `${source}: an API key "${id}" already exists (revoke it first)`);
  const secret = `mfk_${randomBytes(32).toString("base64url")}`;
  const d = doc(text, source);
  const entry: Record<string, unknown> = { id, hash: apiKeyHash(secret), created: (opts.now ?? new Date()).toISOString(), access: rules };
  if (opts.catalog) entry.catalog = true;
  const list = d.get("apikeys");
  if (YAML.isSeq(list)) list.add(d.createNode(entry));
  else d.set("apikeys", d.createNode([entry]));
  const out = d.toString();
  AccessPolicy.parse(out, source); // what is written must load
  return { text: out, secret };
}

/** Removes the API key `id`; throws when there is none. */
export function revokeApiKey(text: string, id: string, source = "access file"): string {
  const d = doc(text, source);
  const list = d.get("apikeys");
  const items = YAML.isSeq(list) ? list.items : [];
  const i = items.findIndex((it) => YAML.isMap(it) && it.get("id") === id);
  if (i < 0) throw new AuthError("BAD_REQUEST", `${source}: no API key "${id}"`);
  (list as YAML.YAMLSeq).delete(i);
  return d.toString();
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
