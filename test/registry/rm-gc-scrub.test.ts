/** The rm/gc/scrub and retention suites on a served directory: `mf registry serve --root DIR`, gc and scrub on DIR. */
import { rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FsDriver } from "../../registry/server/storage/fs.js";
import { retentionSuite } from "./retention-suite.js";
import { rmGcScrubSuite, type ServedRegistry } from "./rm-gc-scrub-suite.js";
import { spawnMfRegistry, tempDir } from "./peers.js";
import { runMf } from "./run-mf.js";

function blobDir(root: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(root, "blobs", "sha256", hex.slice(0, 2), hex);
}

async function servedDirectory(): Promise<ServedRegistry> {
  const dir = await tempDir("mf-rm-gc-");
  const root = join(dir, "root");
  const served = await spawnMfRegistry(root);
  const env = { MF_HOME: join(dir, "home") };
  return {
    base: served.base,
    mf: (args) => runMf(args, env),
    storageArgs: ["--root", root],
    async corruptBlob(digest) {
      const file = join(blobDir(root, digest), "data");
      await truncate(file, 0);
      await writeFile(file, "these are not the bytes that were pushed");
    },
    loseBlob: (digest) => rm(blobDir(root, digest), { recursive: true }),
    driver: new FsDriver({ root }),
    dir,
    async close() {
      served.child.kill("SIGTERM");
      await served.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

rmGcScrubSuite("filesystem", servedDirectory);
retentionSuite("filesystem", servedDirectory);
