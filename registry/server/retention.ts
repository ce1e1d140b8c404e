/**
 * Retention rules for `mf registry gc --retain RULE` (or `retain:` in the config file), applied by gc.ts
 * per repository:
 *
 * - `keep-last=N`: the N most recent tags stay. Recency is when the tag was last pushed: the modification
 *   time of its tag object (filesystem mtime; on S3 the driver's millisecond mtime); ties go to the name
 *   that sorts last;
 * - `keep=GLOB[,GLOB…]`: tags matching one of the patterns stay (`*` any characters, `?` one; repeatable);
 * - `pulled-within=DURATION`: a manifest pulled within the period stays, untagged ones included (a
 *   deployment that pulls by digest), and so do the tags naming it;
 * - `untagged-older-than=DURATION`: an untagged manifest goes once it is older than this (since it was
 *   pushed, or last touched by a push); default, and never less than, gc's `--grace`.
 *
 * With `keep-last` or `keep` given, every tag no rule keeps is deleted; without either, tags are never
 * deleted. Tags that name a subject (`sha256-<hex>`, `sha256-<hex>.sig`, …, the referrers fallback
 * scheme) are not counted among the most recent and match no pattern: one stays exactly while the
 * manifest it names, or its own target, is kept. Deleting a tag only un-roots its manifest, which then
 * goes by gc's rules (gc.ts): never while a kept index references it, while its `subject` is kept (a
 * signature, an SBOM of a kept manifest), while it was pulled within `pulled-within`, or while it is
 * younger than `untagged-older-than`; its own referrers go with it unless something keeps them.
 */
import { parseDigest, type ParsedDigest } from "../../core/digest.js";
import { MfError } from "../../core/errors.js";
import { parseDuration } from "./units.js";

export interface RetentionPolicy {
  /** keep the N most recent tags per repository */
  keepLast?: number;
  /** keep tags matching one of these globs */
  keep?: string[];
  /** untagged manifests older than this go (at least gc's grace) */
  untaggedOlderThanMs?: number;
  /** manifests pulled within this are kept, with their tags */
  pulledWithinMs?: number;
}

const RULES = ["keep-last", "keep", "untagged-older-than", "pulled-within"] as const;
const USAGE = "expected keep-last=N, keep=GLOB[,GLOB…], untagged-older-than=DURATION or pulled-within=DURATION (e.g. --retain keep-last=10 --retain keep=v*,latest)";

/**
 * The policy from `--retain` values (`RULE=VALUE` strings, repeatable) or from the config file's `retain:`
 * (the same strings as a list, or a mapping `{keep-last: 10, keep: [v*, latest], …}`); null when none.
 */
export function parseRetention(input: unknown): RetentionPolicy | null {
  if (input === undefined || input === null) return null;
  const pairs: [string, unknown][] = [];
  const items = Array.isArray(input) ? input : typeof input === "object" ? null : [input];
  if (items) {
    for (const item of items) {
      if (item && typeof item === "object" && !Array.isArray(item)) pairs.push(...Object.entries(item));
      else {
        const text = String(item);
        const eq = text.indexOf("=");
        if (eq < 0) throw new MfError("BAD_REQUEST", `--retain "${text}": ${USAGE}`);
        pairs.push([text.slice(0, eq).trim(), text.slice(eq + 1).trim()]);
      }
    }
  } else {
    pairs.push(...Object.entries(input as Record<string, unknown>));
  }
  if (!pairs.length) return null;
  const policy: RetentionPolicy = {};
  for (const [name, value] of pairs) {
    // yargs hands a config file's mapping on with camelCase copies of its keys (keepLast beside keep-last)
    const rule = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const bad = (why: string) => new MfError("BAD_REQUEST", `--retain ${rule}=${String(value)}: ${why}`);
    switch (rule as (typeof RULES)[number]) {
      case "keep-last": {
        const n = Number(value);
        if (!/^\d+$/.test(String(value).trim()) || !Number.isSafeInteger(n)) throw bad("expected a whole number of tags");
        policy.keepLast = n;
        break;
      }
      case "keep": {
        const globs = (Array.isArray(value) ? value.map(String) : String(value).split(",")).map((g) => g.trim()).filter(Boolean);
        if (!globs.length) throw bad("expected one or more tag patterns, e.g. keep=v*,latest");
        for (const g of globs) if (!/^[A-Za-z0-9_.*?-]{1,128}$/.test(g)) throw bad(`"${g}" is not a tag pattern (tag characters, * and ?)`);
        policy.keep = [...(policy.keep ?? []), ...globs];
        break;
      }
      case "untagged-older-than":
        policy.untaggedOlderThanMs = duration(value, bad);
        break;
      case "pulled-within":
        policy.pulledWithinMs = duration(value, bad);
        break;
      default:
        throw new MfError("BAD_REQUEST", `--retain: unknown rule "${rule}"; ${USAGE}`);
    }
  }
  return policy;
}

function duration(value: unknown, bad: (why: string) => MfError): number {
  try {
    return parseDuration(typeof value === "number" ? String(value) : String(value));
  } catch {
    throw bad("expected a duration such as 12h, 7d or 30d");
  }
}

/** The policy in words, for gc's first line. */
export function describeRetention(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.keepLast !== undefined) parts.push(`keep the ${p.keepLast} most recent tags`);
  if (p.keep) parts.push(`keep tags ${p.keep.join(", ")}`);
  if (p.pulledWithinMs !== undefined) parts.push(`keep what was pulled within ${formatDuration(p.pulledWithinMs)}`);
  if (p.untaggedOlderThanMs !== undefined) parts.push(`remove untagged manifests older than ${formatDuration(p.untaggedOlderThanMs)}`);
  return parts.join("; ");
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Whether the policy deletes tags at all (a tag rule is given). */
export function deletesTags(p: RetentionPolicy | null | undefined): p is RetentionPolicy {
  return !!p && (p.keepLast !== undefined || p.keep !== undefined);
}

/** A matcher for tag globs: `*` any run of characters, `?` one character, the rest literal. */
export function globMatcher(globs: string[]): (tag: string) => boolean {
  if (!globs.length) return () => false;
  const source = globs.map((g) => g.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")).join("|");
  const re = new RegExp(`^(?:${source})$`);
  return (tag) => re.test(tag);
}

/** The subject a referrers-fallback tag names (`sha256-<hex>` with an optional `.suffix`), or null for an ordinary tag. */
export function subjectOfTag(tag: string): ParsedDigest | null {
  const m = /^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})(?:\..*)?$/.exec(tag);
  return m ? parseDigest(`${m[1]}:${m[2]}`) : null;
}

export interface TagFacts {
  tag: string;
  /** when it was last pushed (ms) */
  modifiedMs: number;
  /** its manifest was pulled within `pulled-within` */
  pulled: boolean;
}

/** The ordinary tags (not subject tags) the tag rules keep; the others of `tags` go. */
export function keptTags(tags: TagFacts[], p: RetentionPolicy): Set<string> {
  const matches = globMatcher(p.keep ?? []);
  const ordinary = tags.filter((t) => !subjectOfTag(t.tag));
  const byRecency = [...ordinary].sort((a, b) => b.modifiedMs - a.modifiedMs || (a.tag < b.tag ? 1 : a.tag > b.tag ? -1 : 0));
  const kept = new Set<string>(byRecency.slice(0, p.keepLast ?? 0).map((t) => t.tag));
  for (const t of ordinary) if (matches(t.tag) || t.pulled) kept.add(t.tag);
  return kept;
}
