/**
 * Retention's rules on their own (parsing the flag and config forms, patterns, which tags stay), and gc's
 * tag deletion against a push of the same tag landing between gc's read and its delete (in process, a
 * wrapped driver runs the push at that moment).
 */
import { strict as assert } from "node:assert";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { collectGarbage } from "../../registry/server/gc.js";
import { globMatcher, keptTags, parseRetention, subjectOfTag } from "../../registry/server/retention.js";
import type { StorageDriver } from "../../registry/server/storage/driver.js";
import { FsDriver } from "../../registry/server/storage/fs.js";
import { tagPath } from "../../registry/server/storage/layout.js";
import { pushImage, randomRepo } from "./oci-client.js";
import { Cleanup, startInProcess, type InProcessRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";

const servers: InProcessRegistry[] = [];
const cleanup = new Cleanup();
after(async () => {
  for (const s of servers) await s.close();
  await cleanup.cleanup();
});

describe("retention rules", () => {
  it("--retain strings and the config file's list or mapping give the same policy; mistakes are named", () => {
    const expected = { keepLast: 10, keep: ["v*", "latest"], untaggedOlderThanMs: 7 * 86_400_000, pulledWithinMs: 30 * 86_400_000 };
    assert.deepEqual(parseRetention(["keep-last=10", "keep=v*,latest", "untagged-older-than=7d", "pulled-within=30d"]), expected);
    assert.deepEqual(parseRetention(["keep-last=10", "keep=v*", "keep=latest", "untagged-older-than=7d", "pulled-within=30d"]), expected);
    assert.deepEqual(parseRetention({ "keep-last": 10, keep: ["v*", "latest"], "untagged-older-than": "7d", "pulled-within": "30d" }), expected);
    assert.deepEqual(parseRetention([{ "keep-last": 10, keep: "v*,latest" }, "untagged-older-than=7d", { "pulled-within": "30d" }]), expected);
    // a config file's mapping as yargs hands it on: camelCase copies beside the keys
    assert.deepEqual(parseRetention({ "keep-last": 3, keepLast: 3, keep: ["v*"] }), { keepLast: 3, keep: ["v*"] });
    assert.equal(parseRetention(undefined), null);
    assert.equal(parseRetention([]), null);
    assert.deepEqual(parseRetention(["keep-last=0"]), { keepLast: 0 });
    for (const [input, message] of [
      [["keep-last=-1"], /keep-last=-1: expected a whole number/],
      [["keep-last"], /--retain "keep-last": expected keep-last=N/],
      [["keep=v/*"], /"v\/\*" is not a tag pattern/],
      [["keep="], /expected one or more tag patterns/],
      [["pulled-within=soon"], /pulled-within=soon: expected a duration/],
      [["newest=3"], /unknown rule "newest"/],
    ] as const) {
      assert.throws(() => parseRetention(input), message, JSON.stringify(input));
    }
  });

  it("patterns: * and ? over tag characters, dots literal", () => {
    const m = globMatcher(["v*", "latest", "rc-?.1"]);
    for (const t of ["v1", "v1.2.3", "v", "latest", "rc-7.1"]) assert.ok(m(t), t);
    for (const t of ["av1", "latest2", "rc-10.1", "rc-7x1", "V1"]) assert.ok(!m(t), t);
    assert.deepEqual(subjectOfTag(`sha256-${"ab".repeat(32)}.sig`), { algorithm: "sha256", hex: "ab".repeat(32) });
    assert.equal(subjectOfTag("sha256-abc"), null);
    assert.equal(subjectOfTag("v1"), null);
  });

  it("the N most recent by push time (ties: the name that sorts last), patterns and pulled ones stay; subject tags are not counted", () => {
    const sig = `sha256-${"cd".repeat(32)}`;
    const tags = [
      { tag: "a", modifiedMs: 100, pulled: false },
      { tag: "b", modifiedMs: 300, pulled: false },
      { tag: "c", modifiedMs: 300, pulled: false },
      { tag: "d", modifiedMs: 200, pulled: false },
      { tag: "old-but-pulled", modifiedMs: 1, pulled: false },
      { tag: "v1", modifiedMs: 2, pulled: false },
      { tag: sig, modifiedMs: 999, pulled: false },
    ];
    assert.deepEqual([...keptTags(tags, { keepLast: 2 })].sort(), ["b", "c"]);
    assert.deepEqual([...keptTags(tags, { keepLast: 1 })].sort(), ["c"]);
    assert.deepEqual([...keptTags(tags, { keepLast: 1, keep: ["v*"] })].sort(), ["c", "v1"]);
    assert.deepEqual([...keptTags(tags.map((t) => ({ ...t, pulled: t.tag === "old-but-pulled" })), { keep: ["none"] })], ["old-but-pulled"]);
    assert.deepEqual([...keptTags(tags.map((t) => ({ ...t, pulled: false })), { keepLast: 0 })], []);
  });

  it("a tag pushed again between gc's read and its delete stays, naming the new push", async () => {
    const s = await startInProcess();
    servers.push(s);
    const repo = randomRepo("retainrace");
    await pushImage(s.base, repo, "old");
    await pushImage(s.base, repo, "new");
    const fs = new FsDriver({ root: s.root });
    let stats = 0;
    let repushed = "";
    const racing: StorageDriver = Object.assign(Object.create(fs) as StorageDriver, {
      async stat(path: string) {
        // the first stat of the tag reads its push time; the second is the check right before the delete
        if (path === tagPath(repo, "old") && ++stats === 2) repushed = (await pushImage(s.base, repo, "old")).digest;
        return fs.stat(path);
      },
    });
    const removedTags: string[] = [];
    const report = await collectGarbage({ storage: racing, graceMs: 0, retention: { keepLast: 1 }, onTag: (_r, tag) => removedTags.push(tag) });
    assert.ok(repushed, "the push ran during gc");
    assert.equal(removedTags.length, 0, "the re-pushed tag is not deleted");
    assert.equal(report.tagsRemoved, 0);
    const res = await fetch(`${s.base}/v2/${repo}/manifests/old`, { headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("docker-content-digest"), repushed);
    await res.arrayBuffer();

    // the next run, with nothing racing, removes the tag that is now the older one
    const again = await collectGarbage({ storage: fs, graceMs: 0, retention: { keepLast: 1 }, onTag: (_r, tag) => removedTags.push(tag) });
    assert.deepEqual(removedTags, ["new"]);
    assert.equal(again.tagsRemoved, 1);
  });

  it("one config file serves the whole registry: serve ignores retain, gc ignores serve's keys; a misspelt key still fails", async () => {
    const dir = await cleanup.tempDir("mf-retain-config-");
    const config = join(dir, "registry.yaml");
    await writeFile(config, `addr: 127.0.0.1:0\naudit-log: ${join(dir, "audit.jsonl")}\nretain:\n  keep-last: 5\n  keep: [v*, latest]\n  pulled-within: 30d\n`);
    const served = await cleanup.serve(join(dir, "root"), ["--config", config]);
    await pushImage(served.base, "team/model", "v1");
    const gc = await runMf(["registry", "gc", "--root", join(dir, "root"), "--config", config, "--dry-run"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^retention: keep the 5 most recent tags; keep tags v\*, latest; keep what was pulled within 30d\n/);
    assert.match(gc.stdout, /0 tags to remove by retention/);
    await writeFile(join(dir, "typo.yaml"), "retian:\n  keep-last: 5\n");
    const typo = await runMf(["registry", "gc", "--root", join(dir, "root"), "--config", join(dir, "typo.yaml"), "--dry-run"]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /Unknown argument: retian/);
  });
});
