/**
 * The access file reloaded while the registry serves (issue 15, item 4), on real files with the real
 * watcher: an in-place rewrite (`cat new.yaml > access.yaml`: truncate, then the text in pieces) never
 * puts a policy without keys in force; a file being written is read once it has settled; a file that
 * does not parse, or an empty one, keeps the last good policy and says so.
 */
import { strict as assert } from "node:assert";
import { open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { AccessFile, type AccessPolicy } from "../../../registry/server/index.js";
import { keysDir, makeKey, type Keyed } from "./helpers.js";

function policyText(keys: Keyed[]): string {
  return `# the team's registry
anonymous:
  "public/*": [pull]
keys:
${keys.map((k) => `  - key: ${k.line}\n    access:\n      "team-a/*": [pull, push]\n`).join("")}`;
}

/** Waits (without a deadline of its own: the test runner's timeout is the limit) until `ok` holds. */
async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await sleep(10);
}

interface Watched {
  file: AccessFile;
  path: string;
  /** key counts of every policy seen in force, by sampling and by onReload */
  seen: number[];
  errors: { message: string; keptKeys: number }[];
  reloads: AccessPolicy[];
  stop(): void;
}

describe("the access file reloaded while serving", () => {
  let dir: string;
  let k: Keyed[];
  const opened: Watched[] = [];

  before(async () => {
    dir = await keysDir();
    k = ["a", "b", "c"].map((n) => makeKey(dir, n));
  });
  after(async () => {
    for (const w of opened) w.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** An AccessFile on a fresh file holding keys a and b, watched with its policy sampled continuously. */
  const watched = async (name: string, opts: { settleMs?: number } = {}): Promise<Watched> => {
    const path = join(dir, `${name}.yaml`);
    await writeFile(path, policyText([k[0]!, k[1]!]));
    const w: Watched = { file: undefined as never, path, seen: [], errors: [], reloads: [], stop: () => {} };
    w.file = await AccessFile.open(path, {
      pollMs: 50,
      ...opts,
      onReload: (p) => {
        w.reloads.push(p);
        w.seen.push(p.keys.length);
      },
      onError: (e, kept) => w.errors.push({ message: e.message, keptKeys: kept.keys.length }),
    });
    let sampling = true;
    void (async () => {
      while (sampling) {
        w.seen.push(w.file.current().keys.length);
        await sleep(2);
      }
    })();
    w.stop = () => {
      sampling = false;
      w.file.close();
    };
    opened.push(w);
    return w;
  };

  it("an in-place rewrite (truncate, then two slow halves) never puts a policy without keys in force", { timeout: 30_000 }, async () => {
    const w = await watched("inplace");
    const next = policyText([k[0]!, k[1]!, k[2]!]);
    const half = next.indexOf(k[2]!.line) + 30; // mid-key: the first half alone is not a valid access file
    const fh = await open(w.path, "w"); // O_TRUNC, as the shell's `>` does
    try {
      await sleep(500); // the empty file sits there long enough for the watcher and the poll to see it
      await fh.write(next.slice(0, half));
      await fh.sync();
      await sleep(500);
      await fh.write(next.slice(half));
    } finally {
      await fh.close();
    }
    await until(() => w.file.current().keys.length === 3);
    assert.ok(w.seen.length > 0);
    assert.ok(w.seen.every((n) => n >= 2), `policies in force had ${[...new Set(w.seen)].join(", ")} keys`);
    assert.deepEqual(w.reloads.map((p) => p.keys.length), [3], "only the finished file was loaded");
    for (const e of w.errors) assert.equal(e.keptKeys, 2, "what was refused left the old policy in force");
  });

  it("a file still being written is read only after it settled (one reload, of the finished file)", { timeout: 30_000 }, async () => {
    const w = await watched("settle", { settleMs: 1500 });
    const next = policyText([k[0]!, k[1]!, k[2]!]);
    // the first piece alone is a valid policy with one key: loaded if read early
    const cut = next.indexOf("  - key:", next.indexOf("  - key:") + 1);
    const fh = await open(w.path, "w");
    try {
      await fh.write(next.slice(0, cut));
      await sleep(100);
      await fh.write(next.slice(cut));
    } finally {
      await fh.close();
    }
    await until(() => w.file.current().keys.length === 3);
    assert.deepEqual(w.reloads.map((p) => p.keys.length), [3]);
    assert.deepEqual(w.errors, []);
    assert.ok(w.seen.every((n) => n >= 2), `policies in force had ${[...new Set(w.seen)].join(", ")} keys`);
  });

  it("a file that does not parse keeps the last good policy and says so; an empty one too", { timeout: 30_000 }, async () => {
    const w = await watched("broken");
    await writeFile(w.path, "keys: [ this is not: valid");
    await until(() => w.errors.length === 1);
    assert.match(w.errors[0]!.message, /broken\.yaml: not valid YAML/);
    assert.equal(w.errors[0]!.keptKeys, 2);
    assert.equal(w.file.current().keys.length, 2);
    assert.deepEqual(w.reloads, []);

    await writeFile(w.path, "\n# nothing here yet\n");
    await until(() => w.errors.length === 2);
    assert.match(w.errors[1]!.message, /broken\.yaml is empty; an empty file never replaces an access policy that grants something/);
    assert.equal(w.file.current().keys.length, 2);

    // a good file again is loaded; an explicit policy that grants nothing is a choice, and is loaded too
    await writeFile(w.path, policyText([k[2]!]));
    await until(() => w.reloads.length === 1);
    assert.ok(w.file.current().keys[0]!.key.blob.equals(k[2]!.key.publicBlob));
    await writeFile(w.path, "keys: []\n");
    await until(() => w.reloads.length === 2);
    assert.equal(w.file.current().keys.length, 0);
    assert.equal(w.errors.length, 2);
  });
});
