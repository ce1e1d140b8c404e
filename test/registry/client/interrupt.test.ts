/**
 * Ctrl-C on `mf pull` and `mf push` (the binary, SIGINT mid-blob): exit 130, a message saying how to
 * resume, the state kept; the command run again moves only what was missing.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LocalStore } from "../../../core/store.js";
import type { PartialState } from "../../../registry/client/download.js";
import { RegistryClient, UploadSessions } from "../../../registry/client/index.js";
import { mfCommand, REPO_ROOT } from "../peers.js";
import { buildModel, newStore, type Peer, startPeer } from "./helpers.js";
import { startProxy, type CountingProxy } from "./proxy.js";

const MiB = 1024 * 1024;

interface Run {
  exited: Promise<{ code: number | null; stderr: string }>;
  interrupt(): void;
}

function mfRun(args: string[], store: LocalStore): Run {
  const env: Record<string, string | undefined> = { ...process.env, MF_MODELS: store.root, MF_HOME: join(store.root, ".home") };
  delete env.MF_DEBUG;
  delete env.MF_KEY;
  const p = spawn(process.execPath, [...mfCommand(), ...args], { cwd: REPO_ROOT, env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  p.stderr!.on("data", (d) => (stderr += d));
  return {
    exited: new Promise((r) => p.on("close", (code) => r({ code, stderr }))),
    interrupt: () => p.kill("SIGINT"),
  };
}

/** Resolves once `check()` holds (polling), then waits `settleMs` more for the other side to catch up. */
async function until(check: () => boolean, settleMs = 500): Promise<void> {
  for (let i = 0; !check(); i++) {
    assert.ok(i < 600, "timed out waiting for the transfer to reach its stall point");
    await new Promise((r) => setTimeout(r, 50));
  }
  await new Promise((r) => setTimeout(r, settleMs));
}

describe("Ctrl-C on mf pull and mf push", () => {
  let peer: Peer;
  let proxy: CountingProxy;
  let src: LocalStore;
  let name: string;
  let big: { digest: string; size: number };

  before(async () => {
    peer = await startPeer("mf");
    proxy = await startProxy(peer.base);
    src = await newStore();
    name = `${new URL(proxy.base).host}/ctrlc/model:latest`;
    await buildModel(src, src.root, name, { bigLayerBytes: 6 * MiB });
    big = (await src.readModel(name)).manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  });
  after(async () => {
    await proxy.close();
    await peer.close();
    await rm(src.root, { recursive: true, force: true });
  });

  it("mf pull: exit 130 with how to resume; the bytes received are kept and not fetched again", async () => {
    const client = new RegistryClient();
    await client.push(src, name, { insecure: true }).finally(() => client.close());
    const dst = await newStore();
    try {
      let stalled = false;
      proxy.reset();
      proxy.hooks.onBlobChunk = (c) => {
        if (c.digest !== big.digest) return;
        if (stalled || c.before + c.chunk.length > 2 * MiB) {
          stalled = true;
          return "stall";
        }
      };
      const first = mfRun(["pull", "--insecure", name], dst);
      await until(() => stalled);
      first.interrupt();
      const r = await first.exited;
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, new RegExp(`^mf: interrupted; what was transferred is kept: run \`mf pull --insecure ${name.replace(/\./g, "\\.")}\` again to resume$`, "m"));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      const served = proxy.served.get(big.digest) ?? 0;
      const state = JSON.parse(await readFile(`${dst.partialPath(big.digest)}.json`, "utf8")) as PartialState;
      const kept = state.parts.reduce((a, p) => a + p.done, 0);
      assert.ok(kept > 0 && kept <= served, `kept ${kept} of the ${served} bytes served`);
      assert.equal(await dst.findModel(name), undefined, "no manifest before every blob is in");

      proxy.hooks.onBlobChunk = undefined;
      proxy.dropAll();
      proxy.reset();
      const again = await mfRun(["pull", "--insecure", name], dst).exited;
      assert.equal(again.code, 0, again.stderr);
      assert.equal(proxy.served.get(big.digest), big.size - kept, "only the bytes not kept were fetched");
      assert.ok((await dst.readModel(name)).bytes.equals((await src.readModel(name)).bytes));
      assert.deepEqual((await readdir(dst.blobsDir)).filter((f) => f.includes("partial")), []);
    } finally {
      await rm(dst.root, { recursive: true, force: true });
    }
  });

  it("mf push: exit 130 with how to resume; the run again continues at the registry's offset", async () => {
    const pushed = `${new URL(proxy.base).host}/ctrlc/pushed:latest`;
    await src.copyModel(name, pushed);
    let stalled = false;
    proxy.uploadDigest = big.digest;
    proxy.reset();
    proxy.hooks.onUploadChunk = (c) => {
      if (stalled || c.before + c.chunk.length > 3 * MiB) {
        stalled = true;
        return "stall";
      }
    };
    try {
      const first = mfRun(["push", "--insecure", "--chunk-size", "1M", pushed], src);
      await until(() => stalled);
      first.interrupt();
      const r = await first.exited;
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, new RegExp(`^mf: interrupted; what was transferred is kept: run \`mf push --insecure ${pushed.replace(/\./g, "\\.")}\` again to resume$`, "m"));
      const session = (await new UploadSessions(src.root).list()).find((s) => s.digest === big.digest);
      assert.ok(session && session.offset >= 2 * MiB, `the session is kept on disk (${JSON.stringify(session)})`);

      proxy.hooks.onUploadChunk = undefined;
      proxy.dropAll();
      // where the registry's session stands once the cut PATCH is persisted
      let offset = -1;
      for (let i = 0; i < 100; i++) {
        const st = await fetch(session.location);
        assert.equal(st.status, 204);
        const o = Number(/^0-(\d+)$/.exec(st.headers.get("range") ?? "")![1]) + 1;
        if (o === offset) break;
        offset = o;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(offset >= session.offset, `registry offset ${offset}, client's ${session.offset}`);
      // blobs the first run had not finished travel whole in the second
      let others = 0;
      for (const d of [...(await src.readModel(pushed)).manifest.layers, (await src.readModel(pushed)).manifest.config]) {
        if (d.digest !== big.digest && (await fetch(`${peer.base}/v2/ctrlc/pushed/blobs/${d.digest}`, { method: "HEAD" })).status === 404) others += d.size;
      }
      proxy.reset();
      const again = await mfRun(["push", "--insecure", "--chunk-size", "1M", pushed], src).exited;
      assert.equal(again.code, 0, again.stderr);
      const sent = (proxy.received.get(big.digest) ?? 0) - others;
      assert.equal(sent, big.size - offset, "only the bytes past the registry's offset were sent again");
      const res = await fetch(`${peer.base}/v2/ctrlc/pushed/manifests/latest`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } });
      assert.ok(Buffer.from(await res.arrayBuffer()).equals((await src.readModel(pushed)).bytes));
    } finally {
      proxy.hooks.onUploadChunk = undefined;
      proxy.uploadDigest = undefined;
    }
  });
});
