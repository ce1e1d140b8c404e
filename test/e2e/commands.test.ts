import { test } from "node:test";
import assert from "node:assert/strict";
import { commandEntries } from "../../cli/commands/index.js";
import { mf } from "../helpers/mf.js";

test("every lazily loaded command answers to exactly the words its entry lists", async () => {
  for (const e of commandEntries) {
    const c = await e.load();
    const words = [c.command ?? []].flat().map((s) => String(s).split(" ")[0]!);
    const aliases = [c.aliases ?? []].flat().map(String);
    assert.deepEqual([...words, ...aliases].sort(), [...e.names].sort(), `entry ${e.names[0]}`);
  }
});

test("mf --help lists every command; a typo gets a suggestion and exit 2", async () => {
  const help = await mf(["--help"]);
  assert.equal(help.code, 0);
  for (const e of commandEntries) assert.match(help.stdout, new RegExp(`mf ${e.names[0]}\\b`), e.names[0]);
  const typo = await mf(["biuld"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /Did you mean build\?/);
});
