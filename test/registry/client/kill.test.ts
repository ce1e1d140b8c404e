/**
 * The pulling process SIGKILLed at several points and restarted fetches exactly the bytes its state did
 * not count; the pushing process SIGKILLed mid-blob resumes from the registry's offset. Both against the
 * mf registry and Debian's docker-registry, through a counting proxy.
 */
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { PartialState } from "../../../registry/client/download.js";
import { RegistryClient, UploadSessions } from "../../../registry/client/index.js";
import type { LocalStore } from "../../../core/store.js";
import { REPO_ROOT } from "../peers.js";
import { buildModel, DISTRIBUTION_MISSING, newStore, type Peer, startPeer } from "./helpers.js";
import { startProxy, type CountingProxy } from "./proxy.js";

const CHILD = join(import.meta.dirname, "child.ts");
const MiB = 1024 * 1024;

interface Child {
  proc: ChildProcess;
  exited: Promise<number | string>;
  out(): string;
}

function runChild(op: "pull" | "push", store: LocalStore, name: string, settings: object): Child {
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD, op, store.root, name, JSON.stringify(settings)], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  proc.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((r) => proc.once("exit", (code, sig) => r(code ?? sig ?? -1)));
  return { proc, exited, out: () => out };
}

for (const kind of ["mf", "distribution"] as const) {
  describe(`SIGKILL and resume against ${kind}`, { skip: kind === "distribution" ? DISTRIBUTION_MISSING : undefined }, () => {
    let peer: Peer;
    let proxy: CountingProxy;
    let src: LocalStore;
    let name: string;
    let big: { digest: string; size: number };
    const client = new RegistryClient();

    before(async () => {
      peer = await startPeer(kind);
      proxy = await startProxy(peer.base);
      src = await newStore();
      name = `${new URL(proxy.base).host}/kill/model:latest`;
      await buildModel(src, src.root, name, { bigLayerBytes: 4 * MiB });
      const m = await src.readModel(name);
      big = m.manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
    });
    after(async () => {
      await client.close();
      await proxy.close();
      await peer.close();
      await rm(src.root, { recursive: true, force: true });
    });

    it("a push killed mid-blob resumes from the registry's offset", async () => {
      proxy.uploadDigest = big.digest;
      proxy.reset();
      let killed = false;
      let child: Child | undefined;
      proxy.hooks.onUploadChunk = (c) => {
        if (killed || c.before + c.chunk.length >= 2.5 * MiB) {
          if (!killed) child!.proc.kill("SIGKILL");
          killed = true;
          return "stall";
        }
      };
      child = runChild("push", src, name, { chunkSize: 256 * 1024, blobConcurrency: 1 });
      assert.equal(await child.exited, "SIGKILL", child.out());
      proxy.dropAll();
      proxy.hooks.onUploadChunk = undefined;
      const saved = await new UploadSessions(src.root).list();
      const session = saved.find((s) => s.digest === big.digest);
      assert.ok(session, "the upload session location is kept on disk");
      assert.ok(session.offset >= 2 * MiB, `offset ${session.offset}`);
      // where the registry stands now (distribution 2.8 may have dropped the session: then 0, a restart)
      const st = await fetch(session.location);
      await st.arrayBuffer();
      const registryOffset = st.status === 204 ? Number(/0-(\d+)/.exec(st.headers.get("range") ?? "")![1]) + 1 : 0;
      if (kind === "mf") assert.ok(registryOffset >= 2 * MiB, `registry offset ${registryOffset}`);
      // blobs the first run had not reached yet travel whole in the second
      let others = 0;
      for (const d of [...(await src.readModel(name)).manifest.layers, (await src.readModel(name)).manifest.config]) {
        if (d.digest === big.digest) continue;
        const h = await fetch(`${peer.base}/v2/kill/model/blobs/${d.digest}`, { method: "HEAD" });
        if (h.status === 404) others += d.size;
      }
      proxy.reset();
      const again = runChild("push", src, name, { chunkSize: 256 * 1024, blobConcurrency: 1 });
      assert.equal(await again.exited, 0, again.out());
      assert.ok(proxy.log.some((l) => l.startsWith("GET ") && l.includes("/blobs/uploads/")), "the session was asked its offset");
      const sent = (proxy.received.get(big.digest) ?? 0) - others;
      if (registryOffset > 0) assert.equal(sent, big.size - registryOffset, "only the missing bytes were sent");
      else assert.equal(sent, big.size, "a forgotten session restarts cleanly");
      assert.deepEqual(await new UploadSessions(src.root).list(), []);
      proxy.uploadDigest = undefined;
    });

    it("a pull killed at several points fetches only what its state does not count", async () => {
      const dst = await newStore();
      try {
        const settings = { partSize: 512 * 1024, parallelParts: 3, stateEveryBytes: 64 * 1024 };
        const statePath = dst.partialPath(big.digest) + ".json";
        let missing = big.size;
        for (const fraction of [0.15, 0.5, 0.85]) {
          proxy.reset();
          let killed = false;
          let child: Child | undefined;
          const limit = (big.size - missing) + fraction * missing;
          proxy.hooks.onBlobChunk = (c) => {
            if (c.digest !== big.digest) return;
            if (killed || (big.size - missing) + c.before + c.chunk.length >= limit) {
              if (!killed) child!.proc.kill("SIGKILL");
              killed = true;
              return "stall";
            }
          };
          child = runChild("pull", dst, name, settings);
          assert.equal(await child.exited, "SIGKILL", child.out());
          proxy.dropAll();
          const served = proxy.served.get(big.digest) ?? 0;
          assert.ok(served <= missing, `served ${served} of ${missing} missing`);
          const state = JSON.parse(await readFile(statePath, "utf8")) as PartialState;
          const counted = state.parts.reduce((a, p) => a + p.done, 0);
          assert.ok(big.size - counted <= missing, "the state never goes back");
          missing = big.size - counted;
          assert.equal(await dst.findModel(name), undefined, "no manifest before every blob is in");
        }
        assert.ok(missing < big.size * 0.5, `progress was kept across the kills (${missing} of ${big.size} missing)`);
        proxy.hooks.onBlobChunk = undefined;
        proxy.reset();
        const last = runChild("pull", dst, name, settings);
        assert.equal(await last.exited, 0, last.out());
        assert.equal(proxy.served.get(big.digest), missing, "exactly the missing bytes were fetched");
        const a = await src.readModel(name);
        const b = await dst.readModel(name);
        assert.ok(a.bytes.equals(b.bytes));
        assert.ok(await dst.hasBlob(big.digest));
        const left = (await readdir(dst.blobsDir)).filter((f) => f.includes("partial"));
        assert.deepEqual(left, []);
      } finally {
        await rm(dst.root, { recursive: true, force: true });
      }
    });
  });
}
