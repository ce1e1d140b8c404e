import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsDriver } from "../../registry/server/storage/fs.js";
import { storageDriverSuite } from "./storage-suite.js";

storageDriverSuite("fs", async () => {
  const root = await mkdtemp(join(tmpdir(), "mf-storage-"));
  return { driver: new FsDriver({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});
