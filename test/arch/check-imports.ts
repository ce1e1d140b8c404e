/**
 * The import rule of ARCHITECTURE.md, checked mechanically: every relative import of a source file must
 * point to a folder its own folder may import. Exits non-zero and lists every wrong arrow.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");

/** folder → folders it may import (itself always allowed). Order: most specific first. */
const RULES: [string, string[]][] = [
  ["core", []],
  ["grammar", ["core"]],
  ["builder", ["core", "grammar"]],
  ["registry/protocol", ["core"]],
  ["registry/client", ["core", "registry/protocol"]],
  // the web page's API shows models as `mf show` does: builder's describe and bounded GGUF reader
  ["registry/server/ui", ["core", "grammar", "builder", "registry/protocol", "registry/server"]],
  // the pull-through mirror reaches upstreams through the client: the one arrow from server to client
  ["registry/server/mirror", ["core", "registry/protocol", "registry/server", "registry/client"]],
  ["registry/server", ["core", "registry/protocol"]],
  // the page's own files: plain ES modules for the browser, importing nothing of ours
  ["registry/web", []],
  ["registry", ["core"]],
  ["runtime", ["core", "grammar", "builder", "registry/client", "registry/protocol"]],
  ["fixtures", ["core"]],
  ["cli", ["*"]],
  ["test", ["*"]],
  ["bench", ["*"]],
];

function area(rel: string): string | undefined {
  const p = rel.split(sep).join("/");
  return RULES.map(([a]) => a).find((a) => p === a || p.startsWith(a + "/"));
}

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (/\.(ts|mts|js|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

const IMPORT_RE = /(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^\s*import\s*["']([^"']+)["']/gm;
const problems: string[] = [];
for (const [top] of RULES) {
  if (top.includes("/")) continue;
  const dir = join(ROOT, top);
  try { statSync(dir); } catch { continue; }
  for (const file of files(dir)) {
    const from = area(relative(ROOT, file))!;
    const allowed = RULES.find(([a]) => a === from)![1];
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      if (!spec.startsWith(".")) continue;
      const target = relative(ROOT, resolve(dirname(file), spec));
      const to = area(target);
      if (to === undefined) { problems.push(`${relative(ROOT, file)}: imports ${spec}, outside the mapped folders`); continue; }
      if (to === from || allowed.includes("*") || allowed.includes(to)) continue;
      // a sub-area may import its parent area's allowances (registry/x → core)
      problems.push(`${relative(ROOT, file)}: ${from} may not import ${to} (${spec})`);
    }
  }
}
if (problems.length) {
  console.error(`import rule broken (${problems.length}):\n  ` + problems.join("\n  "));
  process.exit(1);
}
console.log("import rule: ok");
