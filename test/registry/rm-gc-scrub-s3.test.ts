/** The rm/gc/scrub and retention suites on S3 (Ceph in CI): `mf registry serve --storage s3://…`, gc and scrub on the same bucket prefix. */
import { describe, it } from "node:test";
import { MF_BIN, mf } from "../helpers/mf.js";
import { blobPath } from "../../registry/server/storage/layout.js";
import { checkDigest } from "../../registry/server/validate.js";
import { retentionSuite } from "./retention-suite.js";
import { rmGcScrubSuite, type ServedRegistry } from "./rm-gc-scrub-suite.js";
import { s3Driver, S3_MISSING, S3_PEER } from "./s3-peer.js";
import { QUIET_SDK, replicaSet } from "./s3-replicas.js";

if (S3_MISSING) {
  describe("mf registry rm, gc and scrub: s3", () => {
    it("runs the rm/gc/scrub and retention suites against S3", { skip: S3_MISSING }, () => {});
  });
} else {
  const served = async (): Promise<ServedRegistry> => {
    const set = await replicaSet("rmgc");
    const replica = await set.start();
    const driver = s3Driver(set.prefix);
    const peer = S3_PEER!;
    const env = {
      ...QUIET_SDK, MF_HOME: `${set.dir}/home`,
      AWS_ACCESS_KEY_ID: peer.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: peer.credentials.secretAccessKey,
    };
    return {
      base: replica.base,
      mf: (args) => mf(args, { env, command: [MF_BIN] }),
      storageArgs: ["--storage", set.storage, "--s3-endpoint", peer.endpoint, "--s3-region", peer.region],
      corruptBlob: (digest) => driver.putContent(blobPath(checkDigest(digest)), Buffer.from("these are not the bytes that were pushed")),
      loseBlob: (digest) => driver.delete(blobPath(checkDigest(digest))),
      driver,
      dir: set.dir,
      async close() {
        driver.close();
        await set.close();
      },
    };
  };
  rmGcScrubSuite("s3", served);
  retentionSuite("s3", served);
}
