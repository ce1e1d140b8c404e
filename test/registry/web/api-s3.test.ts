/** The web page's JSON API on S3 storage (api-suite.ts): the same answers as on a filesystem, read through the S3 driver. */
import { describe, it } from "node:test";
import { removeS3Prefix, s3Driver, s3Prefix, S3_MISSING } from "../s3-peer.js";
import { webApiSuite } from "./api-suite.js";

describe("registry web page API, S3 storage", () => {
  if (S3_MISSING) {
    it("lists, details, models and referrers on S3", { skip: S3_MISSING }, () => {});
    return;
  }
  const prefix = s3Prefix("web-api");
  webApiSuite(async () => s3Driver(prefix), () => removeS3Prefix(prefix));
});
