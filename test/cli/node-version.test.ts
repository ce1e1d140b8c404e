/** The oldest Node.js mf runs on: the `mf` binary says so, plainly, before anything else can fail to link. */
import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { nodeTooOld } from "../../cli/node-version.js";
import { MF_BIN, ROOT, mfEnv, runProcess } from "../helpers/mf.js";

test("node version floor: 22.15 on the 22 line, 23.8 on 23, any 24 or later; older ones are named with what to install", () => {
  for (const ok of ["22.15.0", "22.15.1", "22.23.5", "23.8.0", "24.0.0", "24.11.1", "26.1.0"]) assert.equal(nodeTooOld(ok), undefined, ok);
  for (const old of ["22.0.0", "22.12.0", "22.14.0", "23.7.0", "20.20.2", "18.19.0"]) {
    const why = nodeTooOld(old);
    assert.ok(why, old);
    assert.match(why, new RegExp(`^Node\\.js ${old.replaceAll(".", "\\.")} is too old: mf needs Node\\.js 22\\.15 or later on the 22 line, or 24`));
    assert.match(why, /Install a current Node\.js 22 or 24 LTS/);
  }
  assert.match(nodeTooOld("22.14.0")!, /zstd streams of node:zlib came in 22\.15/);
  assert.equal(nodeTooOld("v-next"), undefined, "a version it cannot read is let through");
});

test("node version floor: package.json's engines states the same floor to npm", () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } };
  assert.equal(pkg.engines.node, "^22.15.0 || >=24");
});

test("node version floor: the real binary on a Node.js that reports 22.14.0 exits 1 with the floor, not a link error, for --help and a command", async () => {
  // node's own version is made to read 22.14.0 before mf's entry runs, as it would on that release
  const pretend = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"22.14.0"})`;
  for (const args of [["--help"], ["list"]]) {
    const r = await runProcess(process.execPath, ["--import", pretend, MF_BIN, ...args], { env: mfEnv({ MF_MODELS: join(ROOT, "no-such-store") }) });
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `mf: ${nodeTooOld("22.14.0")}\n`);
  }
  const now = await runProcess(process.execPath, [MF_BIN, "--version"], { env: mfEnv() });
  assert.equal(now.code, 0, now.stderr);
});
