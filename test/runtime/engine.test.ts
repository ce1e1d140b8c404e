/** The engine conformance suite against node-llama-cpp (generated tiny model, one thread) and the fake. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { TINY, writeLlamaGguf } from "../../fixtures/gguf/index.js";
import { createLlamaEngine } from "../../runtime/engine/llama.js";
import { engineSuite } from "./engine-suite.js";
import { FakeEngine } from "./fake-engine.js";

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

engineSuite("node-llama-cpp", async () => {
  dir = await mkdtemp(join(tmpdir(), "mf-engine-"));
  const modelPath = join(dir, "tiny.gguf");
  const badPath = join(dir, "bad.gguf");
  await writeLlamaGguf(modelPath, TINY);
  await writeLlamaGguf(badPath, { ...TINY, extraMetadata: { "general.architecture": "no-such-arch" } });
  return { engine: createLlamaEngine({ threads: 1 }), modelPath, badPath, badReason: /unknown model architecture: 'no-such-arch'/ };
});

engineSuite("fake", async () => ({ engine: new FakeEngine(), modelPath: "/fake/tiny", badPath: "/fake/missing", badReason: /fake failure/ }));
