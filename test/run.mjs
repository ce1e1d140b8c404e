#!/usr/bin/env node
// Runs every test file under test/ with node's built-in runner (through tsx), so the runner's closing
// summary is what CI reads. Node 20's --test takes no globs, so the files are listed here.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function find(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

// --built (npm test, right after `npm run build`): the registry suites start the built binary
// (dist/cli/main.js) instead of the source through tsx, which costs each of their hundreds of `mf` starts
// about 0.3 s more; run by hand, they start the source, so a stale dist/ never answers for it.
const args = process.argv.slice(2);
if (args.includes("--built")) process.env.MF_TEST_CLI ??= "dist/cli/main.js";
const filter = args.filter((a) => a !== "--built");
let files = find("test");
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
const concurrency = process.env.MF_TEST_CONCURRENCY ?? "2";
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
