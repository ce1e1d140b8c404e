/**
 * The same conformance suite against Debian's docker-registry (CNCF distribution 2.8): a check of the
 * suite itself. Its known deviations from registry.md are listed, each asserted as the peer's behaviour.
 */
import { after, before, describe, it } from "node:test";
import { registryConformance, type Deviation } from "./conformance.js";
import { DOCKER_REGISTRY, startDistribution, type DistributionRegistry } from "./peers.js";
import { existsSync } from "node:fs";

const DISTRIBUTION_DEVIATIONS: Deviation[] = [
  "no-monolithic-post", "content-range-ignored", "no-referrers", "invalid-ref-not-400", "range-416-malformed", "tags-unsorted", "no-tag-pagination",
  "json-charset", "no-tag-query", "generic-manifest-type-refused", "sha512-canonical-sha256",
];

if (!existsSync(DOCKER_REGISTRY)) {
  describe("registry conformance: distribution 2.8", () => {
    it("runs the suite against docker-registry", { skip: `${DOCKER_REGISTRY} is not installed (apt-get install docker-registry)` }, () => {});
  });
} else {
  let peer: DistributionRegistry;
  before(async () => {
    peer = (await startDistribution())!;
  });
  after(async () => peer?.close());
  registryConformance("distribution 2.8 (docker-registry)", () => peer.base, { deviations: DISTRIBUTION_DEVIATIONS });
}
