/** Which verify rule of config.json applies to a pulled repository: the longest scope that is it or a path prefix of it. */
import { strict as assert } from "node:assert";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ruleFor, verifyRules } from "../../cli/verify.js";

test("verify rules: longest path-prefix scope wins, * is the fallback, relative paths are under mf's home, bad rules are named", async () => {
  const home = await mkdtemp(join(tmpdir(), "mf-verify-rules-"));
  try {
    await writeFile(join(home, "config.json"), JSON.stringify({
      auths: {},
      verify: {
        "*": "/etc/all",
        "Reg.example.com:5000": { allowedSigners: "reg", identity: "*@example.com" },
        "reg.example.com:5000/team/": "team",
        "reg.example.com:5000/team/mario": "~/mario",
      },
    }));
    const rules = verifyRules(home);
    assert.equal(ruleFor(rules, "reg.example.com:5000/team/mario")!.allowedSigners.endsWith("/mario"), true);
    assert.equal(ruleFor(rules, "reg.example.com:5000/team/luigi")!.allowedSigners, join(home, "team"));
    assert.equal(ruleFor(rules, "reg.example.com:5000/teamx/luigi")!.allowedSigners, join(home, "reg"), "team does not cover teamx");
    assert.equal(ruleFor(rules, "reg.example.com:5000/teamx/luigi")!.identity, "*@example.com");
    assert.equal(ruleFor(rules, "other.example.com/a/b")!.allowedSigners, "/etc/all");
    assert.equal(ruleFor(rules.filter((r) => r.scope !== "*"), "other.example.com/a/b"), undefined);
    await writeFile(join(home, "config.json"), JSON.stringify({ verify: { "reg.example.com": { identity: "x" } } }));
    assert.throws(() => verifyRules(home), /"verify": "reg\.example\.com" needs a path, or \{"allowedSigners": PATH, "identity": PRINCIPAL\}/);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
