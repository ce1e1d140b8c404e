import { test } from "node:test";
import assert from "node:assert/strict";
import { displayRef, formatRef, parseRef, tryParseRef } from "../../core/reference.js";

test("defaults fill host, namespace and tag", () => {
  assert.deepEqual(parseRef("mario"), { host: "registry.ollama.ai", namespace: "library", model: "mario", tag: "latest" });
  assert.deepEqual(parseRef("team/mario:v1"), { host: "registry.ollama.ai", namespace: "team", model: "mario", tag: "v1" });
  assert.deepEqual(parseRef("registry.example.com/team/mario"), { host: "registry.example.com", namespace: "team", model: "mario", tag: "latest" });
});

test("the tag splits at the last colon only after the last slash", () => {
  const r = parseRef("localhost:5000/team/m");
  assert.equal(r.host, "localhost:5000");
  assert.equal(r.tag, "latest");
  assert.equal(parseRef("localhost:5000/team/m:7b").tag, "7b");
});

test("scheme is kept apart", () => {
  const r = parseRef("http://localhost:5000/team/m:1");
  assert.equal(r.scheme, "http");
  assert.equal(formatRef(r), "localhost:5000/team/m:1");
});

test("invalid names are refused with the rules in the message", () => {
  for (const bad of ["", "a/b/c/d", "-x", "x/", "/x", "te.am/x/y/z", "a b", "x:", "x:-t", "ns.x/model", "../etc/passwd", "a".repeat(81)]) {
    assert.equal(tryParseRef(bad), null, bad);
  }
  assert.throws(() => parseRef("../x"), (e: Error & { code?: string }) => e.code === "NAME_INVALID" && /invalid model name/.test(e.message));
});

test("the shortest display form drops the default host and library/", () => {
  assert.equal(displayRef(parseRef("mario")), "mario:latest");
  assert.equal(displayRef(parseRef("team/mario:v2")), "team/mario:v2");
  assert.equal(displayRef(parseRef("registry.ollama.ai/library/mario")), "mario:latest");
  assert.equal(displayRef(parseRef("example.com/library/mario")), "example.com/library/mario:latest");
});

test("parts start with a letter, digit or underscore and stay in their alphabets", () => {
  assert.ok(tryParseRef("_private/m_1.2:tag_3.x-y"));
  assert.equal(tryParseRef(".hidden"), null);
  assert.equal(tryParseRef("m:.tag"), null);
  assert.equal(tryParseRef("ns/mo$del"), null);
});
