/** The conformance suite against `mf registry serve` (fs driver, in process, real HTTP on 127.0.0.1:0). */
import { after, before } from "node:test";
import { registryConformance } from "./conformance.js";
import { startInProcess, type InProcessRegistry } from "./peers.js";

let mf: InProcessRegistry;
before(async () => {
  mf = await startInProcess();
});
after(async () => mf.close());

registryConformance("mf registry (fs driver)", () => mf.base);
