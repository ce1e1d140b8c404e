/**
 * `npm run services` (test/services/ceph.sh up) on a machine without Ceph: it says that Ceph is not
 * installed and how to install it, and `eval "$(npm run -s services)"`, as the README writes it, fails
 * instead of succeeding with nothing set. PATH holds only sh, bash, node and npm, so no Ceph tool is found
 * (CEPH_DIR is a fresh temp dir, so a Ceph this machine runs is never touched).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";

const ROOT = resolve(import.meta.dirname, "../..");
const BASH = "/bin/bash";

function findOnPath(cmd: string): string | undefined {
  const r = spawnSync(BASH, ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

describe("npm run services without Ceph", () => {
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "mf-services-"));
    const bin = join(dir, "bin");
    await mkdir(bin);
    await symlink(BASH, join(bin, "bash"));
    await symlink("/bin/sh", join(bin, "sh")); // npm runs scripts with sh
    await symlink(process.execPath, join(bin, "node"));
    const npm = findOnPath("npm");
    if (npm) await symlink(npm, join(bin, "npm"));
    env = { PATH: bin, HOME: dir, CEPH_DIR: join(dir, "ceph") };
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("ceph.sh up fails, says Ceph is not installed and how to install it", () => {
    const r = spawnSync(BASH, ["test/services/ceph.sh", "up"], { cwd: ROOT, env, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Ceph is not installed \(ceph-mon .* not found on PATH\)/);
    assert.match(r.stderr, /apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common curl/);
    assert.doesNotMatch(r.stdout, /export /, "nothing to export");
  });

  it('eval "$(npm run -s services)" fails and sets nothing', { skip: findOnPath("npm") ? undefined : "npm is not on PATH" }, () => {
    const r = spawnSync(BASH, ["-c", 'eval "$(npm run -s services)" && echo "eval succeeded"; echo "endpoint=${MF_TEST_S3_ENDPOINT-unset}"'], {
      cwd: ROOT, env, encoding: "utf8",
    });
    assert.doesNotMatch(r.stdout, /eval succeeded/);
    assert.match(r.stdout, /endpoint=unset/);
    assert.match(r.stderr, /Ceph is not installed/);
  });
});
