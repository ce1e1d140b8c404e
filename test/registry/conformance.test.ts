/**
 * The conformance suite against `mf registry serve` (fs driver, in process, real HTTP on 127.0.0.1:0),
 * and the non-distributable layer checks against it with and without `allowForeignLayers`.
 */
import { after, before } from "node:test";
import { foreignLayerConformance, registryConformance } from "./conformance.js";
import { startInProcess, type InProcessRegistry } from "./peers.js";

let mf: InProcessRegistry;
let foreign: InProcessRegistry;
before(async () => {
  mf = await startInProcess();
  foreign = await startInProcess({ allowForeignLayers: /^https:\/\/layers\.example\.com\// });
});
after(async () => {
  await mf.close();
  await foreign.close();
});

registryConformance("mf registry (fs driver)", () => mf.base);
foreignLayerConformance("mf registry, default policy", () => mf.base);
foreignLayerConformance("mf registry --allow-foreign-layers '^https://layers\\.example\\.com/'", () => foreign.base, { allowedUrl: "https://layers.example.com/" });
