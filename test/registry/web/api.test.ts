/** The web page's JSON API on the filesystem driver (api-suite.ts). */
import { describe } from "node:test";
import { webApiSuite } from "./api-suite.js";

describe("registry web page API, filesystem storage", () => {
  webApiSuite(async () => undefined);
});
