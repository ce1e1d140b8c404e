import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fmtPaired, pairedRatio } from "../../bench/lib.js";

describe("bench: paired ratios", () => {
  it("takes the median of per-round ratios, so a drift of the machine's speed that hits both sides cancels", () => {
    // the machine slows down over the rounds; each round mf runs 2% ahead of its peer
    const peer = [100, 96, 91, 88, 84, 80, 77];
    const mf = peer.map((x) => x * 1.02);
    const p = pairedRatio(mf, peer)!;
    assert.equal(p.median.toFixed(4), "1.0200");
    assert.equal(p.low.toFixed(4), "1.0200");
    assert.equal(p.high.toFixed(4), "1.0200");
    assert.equal(fmtPaired(p), "1.02× (1.02–1.02)");
  });

  it("gives the order statistics of a 95% interval for the median: the whole range for 7 rounds, the 4th to 12th of 15, the 6th to 16th of 21", () => {
    const rounds = (n: number) => Array.from({ length: n }, (_, i) => 1 + i / 100); // ratios 1.00, 1.01, … in order
    const ones = (n: number) => Array.from({ length: n }, () => 1);
    const seven = pairedRatio(rounds(7), ones(7))!;
    assert.deepEqual([seven.low, seven.high, seven.median], [1, 1.06, 1.03]);
    assert.equal(seven.level.toFixed(4), (1 - 2 / 128).toFixed(4));
    const fifteen = pairedRatio(rounds(15), ones(15))!;
    assert.deepEqual([fifteen.low, fifteen.high], [1.03, 1.11]);
    assert.equal(fifteen.level.toFixed(3), "0.965");
    const twentyOne = pairedRatio(rounds(21), ones(21))!;
    assert.deepEqual([twentyOne.low, twentyOne.high, twentyOne.median], [1.05, 1.15, 1.1]);
    assert.ok(twentyOne.level >= 0.95 && twentyOne.level < 0.98, `level ${twentyOne.level}`);
  });

  it("says how sure a short run is: 5 rounds reach 94%, not 95%", () => {
    const p = pairedRatio([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])!;
    assert.deepEqual([p.low, p.high], [1, 5]);
    assert.equal(p.level.toFixed(4), "0.9375");
  });

  it("pairs by round: unsorted rounds, an even count, and rounds one side lacks", () => {
    const p = pairedRatio([90, 120, 100, 110], [100, 100, 100, 100])!;
    assert.equal(p.median.toFixed(3), "1.050");
    assert.equal(p.rounds, 4);
    assert.equal(pairedRatio([1, 2, 3], [1, 1])!.rounds, 2);
    assert.equal(pairedRatio([], []), undefined);
    assert.equal(fmtPaired(undefined), "—");
  });
});
