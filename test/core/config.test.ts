import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseFlashAttention, resolveConfig } from "../../core/config.js";

test("defaults: the store under ~/.mf, Ollama's address, 5m keep-alive", () => {
  const c = resolveConfig({ env: {}, home: "/home/u" });
  assert.equal(c.home, join("/home/u", ".mf"));
  assert.equal(c.models, join("/home/u", ".mf", "models"));
  assert.equal(c.host, "127.0.0.1:11434");
  assert.equal(c.keepAlive, "5m");
  assert.equal(c.key, join("/home/u", ".mf", "id_ed25519"));
  assert.deepEqual([c.maxLoadedModels, c.numParallel, c.maxQueue, c.verbose], [3, 1, 512, false]);
  assert.deepEqual(c.origins, []);
});

test("a flag beats its MF_* variable, which beats the default", () => {
  const env = { MF_MODELS: "/env/models", MF_HOST: "0.0.0.0:1", MF_NUM_PARALLEL: "4", MF_ORIGINS: "a, b,", MF_DEBUG: "1" };
  const fromEnv = resolveConfig({ env, home: "/home/u" });
  assert.deepEqual([fromEnv.models, fromEnv.host, fromEnv.numParallel, fromEnv.verbose], ["/env/models", "0.0.0.0:1", 4, true]);
  assert.deepEqual(fromEnv.origins, ["a", "b"]);
  const fromFlags = resolveConfig({ env, home: "/home/u", flags: { models: "/flag/models", host: "h:2", numParallel: 2, verbose: false } });
  assert.deepEqual([fromFlags.models, fromFlags.host, fromFlags.numParallel, fromFlags.verbose], ["/flag/models", "h:2", 2, false]);
});

test("MF_HOME moves everything that has no setting of its own", () => {
  const c = resolveConfig({ env: { MF_HOME: "/srv/mf" }, home: "/home/u" });
  assert.equal(c.models, join("/srv/mf", "models"));
  assert.equal(c.key, join("/srv/mf", "id_ed25519"));
  assert.equal(resolveConfig({ env: { MF_HOME: "/srv/mf", MF_MODELS: "/m" }, home: "/home/u" }).models, "/m");
});

test("the built engine's directory: ~/.mf/engine, under MF_HOME, or MF_ENGINE_DIR", () => {
  assert.equal(resolveConfig({ env: {}, home: "/home/u" }).engineDir, join("/home/u", ".mf", "engine"));
  assert.equal(resolveConfig({ env: { MF_HOME: "/srv/mf" }, home: "/home/u" }).engineDir, join("/srv/mf", "engine"));
  assert.equal(resolveConfig({ env: { MF_HOME: "/srv/mf", MF_ENGINE_DIR: "/cache/engine" }, home: "/home/u" }).engineDir, "/cache/engine");
});

test("empty or malformed variables fall back to the default instead of an empty path or NaN", () => {
  const c = resolveConfig({ env: { MF_HOME: "", MF_MODELS: "", MF_HOST: "", MF_MAX_QUEUE: "lots", MF_ORIGINS: " " }, home: "/home/u" });
  assert.equal(c.home, join("/home/u", ".mf"));
  assert.equal(c.models, join("/home/u", ".mf", "models"));
  assert.equal(c.host, "127.0.0.1:11434");
  assert.equal(c.maxQueue, 512);
  assert.deepEqual(c.origins, []);
});

test("no OLLAMA_* variable is read", () => {
  const c = resolveConfig({ env: { OLLAMA_MODELS: "/ollama", OLLAMA_HOST: "0.0.0.0:9", OLLAMA_KEEP_ALIVE: "1h" }, home: "/home/u" });
  assert.equal(c.models, join("/home/u", ".mf", "models"));
  assert.equal(c.host, "127.0.0.1:11434");
  assert.equal(c.keepAlive, "5m");
});

test("MF_THREADS: a whole number of threads, beaten by the flag; 0 or junk is no setting", () => {
  assert.equal(resolveConfig({ env: {}, home: "/h" }).threads, undefined);
  assert.equal(resolveConfig({ env: { MF_THREADS: "3" }, home: "/h" }).threads, 3);
  assert.equal(resolveConfig({ env: { MF_THREADS: "3" }, home: "/h", flags: { threads: 1 } }).threads, 1);
  assert.equal(resolveConfig({ env: { MF_THREADS: "2.9" }, home: "/h" }).threads, 2);
  for (const junk of ["0", "-2", "many", " "]) assert.equal(resolveConfig({ env: { MF_THREADS: junk }, home: "/h" }).threads, undefined, junk);
  assert.equal(resolveConfig({ env: {}, home: "/h", file: { threads: 4 } }).threads, 4);
});

test("MF_FLASH_ATTENTION: auto by default, beaten by the flag and beating the file; auto, on or off, also as 1/0, true/false, yes/no", () => {
  assert.equal(resolveConfig({ env: {}, home: "/h" }).flashAttention, "auto");
  assert.equal(resolveConfig({ env: { MF_FLASH_ATTENTION: "off" }, file: { flashAttention: "on" }, home: "/h" }).flashAttention, "off");
  assert.equal(resolveConfig({ env: { MF_FLASH_ATTENTION: "off" }, flags: { flashAttention: "on" }, home: "/h" }).flashAttention, "on");
  assert.equal(resolveConfig({ env: { MF_FLASH_ATTENTION: "" }, file: { flashAttention: "on" }, home: "/h" }).flashAttention, "on");
  const read = (v: string) => parseFlashAttention(v);
  assert.deepEqual(["auto", "AUTO", " ", "on", "1", "true", "Yes", "off", "0", "false", "no", "OFF"].map(read), ["auto", "auto", "auto", "on", "on", "on", "on", "off", "off", "off", "off", "off"]);
  for (const junk of ["sometimes", "2", "enabled"]) assert.throws(() => read(junk), new RegExp(`^Error: MF_FLASH_ATTENTION takes auto, on or off, not "${junk}"$`));
  assert.throws(() => parseFlashAttention("x", "--flash-attention"), /^Error: --flash-attention takes auto, on or off, not "x"$/);
});

test("metrics: off by default; MF_METRICS and MF_METRICS_ADDR, beaten by the flags and beating the file", () => {
  const off = resolveConfig({ env: {}, home: "/h" });
  assert.deepEqual([off.metrics, off.metricsAddr], [false, undefined]);
  const fromEnv = resolveConfig({ env: { MF_METRICS: "1", MF_METRICS_ADDR: "127.0.0.1:9100" }, file: { metrics: false, metricsAddr: "0.0.0.0:1" }, home: "/h" });
  assert.deepEqual([fromEnv.metrics, fromEnv.metricsAddr], [true, "127.0.0.1:9100"]);
  const fromFile = resolveConfig({ env: { MF_METRICS: "", MF_METRICS_ADDR: "" }, file: { metrics: true, metricsAddr: "0.0.0.0:1" }, home: "/h" });
  assert.deepEqual([fromFile.metrics, fromFile.metricsAddr], [true, "0.0.0.0:1"]);
  const fromFlags = resolveConfig({ flags: { metrics: false, metricsAddr: "[::1]:9200" }, env: { MF_METRICS: "true", MF_METRICS_ADDR: "127.0.0.1:9100" }, home: "/h" });
  assert.deepEqual([fromFlags.metrics, fromFlags.metricsAddr], [false, "[::1]:9200"]);
});
