/**
 * `mf registry key add|revoke` on a hand-written access file (issue 15, item 4): only the lines of the
 * key added or removed change. Comments and their alignment, `[pull]` flow lists, one-line `key:`
 * entries longer than 80 columns and everything else stay byte for byte; revoking what was added gives
 * back the file as it was. Through the `mf` binary, plus the editor itself on the shapes an `apikeys`
 * section can have.
 */
import { strict as assert } from "node:assert";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { addApiKey, revokeApiKey } from "../../../registry/server/access-edit.js";
import { AccessPolicy } from "../../../registry/server/access.js";
import { runMf } from "../run-mf.js";
import { keysDir, makeKey, type Keyed } from "./helpers.js";

const HASH = `sha256:${"ab".repeat(32)}`;

/** An access file as a person writes it: aligned comments, flow lists, a long key line, an API key. */
function handWritten(alice: Keyed): string {
  return `# Registry access: reviewed by the platform team
anonymous:
  "public/*": [pull]                     # anyone may pull public/…
keys:
  - key: ${alice.line}-with-a-comment-long-enough-to-pass-eighty-columns
    access:
      "team-a/*": [pull, push, delete]   # * = one path segment, ** = any depth
    catalog: true                        # may list repositories

apikeys:
  # the nightly build
  - id: nightly
    hash: ${HASH}
    created: "2026-11-01T00:00:00.000Z"
    access:
      "team-a/*": [pull]                 # read only

# end of file: keep this comment
`;
}

/** The new entry's lines in `after`, which must be `before` with exactly those lines inserted. */
function insertedLines(before: string, after: string): string[] {
  const a = before.split("\n");
  const b = after.split("\n");
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const added = b.length - a.length;
  assert.deepEqual(b.slice(i + added), a.slice(i), "everything after the new entry is unchanged");
  return b.slice(i, i + added);
}

describe("mf registry key add/revoke keep the access file as written", () => {
  let dir: string;
  let alice: Keyed;

  before(async () => {
    dir = await keysDir();
    alice = makeKey(dir, "alice");
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("add inserts one entry after the last API key and changes no other byte; revoke restores the file exactly", async () => {
    const path = join(dir, "access.yaml");
    const original = handWritten(alice);
    await writeFile(path, original);

    const add = await runMf(["registry", "key", "add", "ci", "--access", path, "--allow", "team-a/*=pull,push", "--allow", "public/**=pull"]);
    assert.equal(add.code, 0, add.stderr);
    const secret = add.stdout.trim();
    const added = await readFile(path, "utf8");
    const lines = insertedLines(original, added);
    assert.equal(lines[0], "  - id: ci");
    assert.match(lines[1]!, /^    hash: sha256:[0-9a-f]{64}$/);
    assert.match(lines[2]!, /^    created: \d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.deepEqual(lines.slice(3), ["    access:", '      "team-a/*": [pull, push]', '      "public/**": [pull]']);
    assert.ok(added.indexOf("  - id: ci") > added.indexOf("# read only"), "after the last API key");
    assert.ok(added.indexOf("  - id: ci") < added.indexOf("# end of file"), "before the closing comment");
    assert.equal(AccessPolicy.parse(added).findApiKey(secret)?.id, "ci");

    const revoke = await runMf(["registry", "key", "revoke", "ci", "--access", path]);
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.equal(await readFile(path, "utf8"), original, "byte for byte");

    // revoking a hand-written entry removes its lines only
    const revokeNightly = await runMf(["registry", "key", "revoke", "nightly", "--access", path]);
    assert.equal(revokeNightly.code, 0, revokeNightly.stderr);
    const withoutNightly = original.replace(/  - id: nightly\n(?: {4}.*\n)+/, "");
    assert.notEqual(withoutNightly, original);
    assert.equal(await readFile(path, "utf8"), withoutNightly);
  });

  it("every shape of apikeys: none yet, empty (`apikeys:`, `[]`, `~`), block lists at any indentation, CRLF", () => {
    const keys = `keys:\n- key: ${alice.line}\n  access:\n    "team-a/*": [pull]   # flow list stays\n`;
    // text before, what the added entry looks like in place, the text after revoking it again
    const cases: { text: string; expect: RegExp; revoked: string }[] = [
      { text: "", expect: /^apikeys:\n  - id: ci\n    hash: /, revoked: "apikeys:\n" },
      { text: "# only a comment\n", expect: /^# only a comment\napikeys:\n  - id: ci\n/, revoked: "# only a comment\napikeys:\n" },
      { text: keys, expect: /# flow list stays\napikeys:\n- id: ci\n  hash: /, revoked: `${keys}apikeys:\n` },
      { text: `${keys}apikeys:\n`, expect: /\napikeys:\n  - id: ci\n/, revoked: `${keys}apikeys:\n` },
      { text: `${keys}apikeys: []   # none yet\n`, expect: /\napikeys:   # none yet\n  - id: ci\n/, revoked: `${keys}apikeys:   # none yet\n` },
      { text: `${keys}apikeys: ~\n`, expect: /\napikeys:\n  - id: ci\n/, revoked: `${keys}apikeys:\n` },
      {
        text: `apikeys:\n    -   id: old\n        hash: ${HASH}\n${keys}`,
        expect: /\n    -   id: ci\n        hash: sha256:[0-9a-f]{64}\n        created: [^\n]+\n        access:\n          "x\/\*": \[pull\]\nkeys:/,
        revoked: `apikeys:\n    -   id: old\n        hash: ${HASH}\n${keys}`,
      },
      { text: `apikeys:\r\n  - id: old\r\n    hash: ${HASH}\r\n`, expect: /\r\n  - id: ci\r\n    hash: sha256:[0-9a-f]{64}\r\n/, revoked: `apikeys:\r\n  - id: old\r\n    hash: ${HASH}\r\n` },
    ];
    for (const c of cases) {
      const { text, secret } = addApiKey(c.text, "ci", { "x/*": ["pull"] });
      assert.match(text, c.expect, JSON.stringify(text));
      assert.equal(AccessPolicy.parse(text).findApiKey(secret)?.id, "ci");
      assert.equal(revokeApiKey(text, "ci"), c.revoked, JSON.stringify(c.text));
    }
    // `*` (every action) is quoted: bare, YAML reads it as an alias
    const all = addApiKey("", "admin", { "**": ["*"] });
    assert.match(all.text, /\n      "\*\*": \["\*"\]\n/);
    assert.deepEqual([...AccessPolicy.parse(all.text).findApiKey(all.secret)!.rules[0]!.actions], ["pull", "push", "delete"]);
    // an id that YAML would read as another type is quoted, so it stays a string
    const odd = addApiKey("", "true", { "x/*": ["pull"] });
    assert.match(odd.text, /- id: "true"\n/);
    assert.equal(AccessPolicy.parse(odd.text).findApiKey(odd.secret)?.id, "true");
    // a flow-style list is not rewritten: the command says how to make it editable
    assert.throws(() => addApiKey(`apikeys: [{id: a, hash: "${HASH}"}]\n`, "ci", { "x/*": ["pull"] }), /apikeys must be a block list/);
  });
});
