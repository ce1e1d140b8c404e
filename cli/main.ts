#!/usr/bin/env node
/**
 * The `mf` binary. It checks the Node.js version first, before anything that could fail to link on an older
 * one is imported (ES module imports are all linked before any code of theirs runs), then runs `mf.ts`.
 */
import { nodeTooOld } from "./node-version.js";

const tooOld = nodeTooOld(process.versions.node);
if (tooOld) {
  process.stderr.write(`mf: ${tooOld}\n`);
  process.exit(1);
}
await import("./mf.js");
