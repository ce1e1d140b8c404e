/**
 * `POST /api/pull` and `POST /api/push` (runtime/server/routes/pull-push.ts) on a bare fastify app with
 * the runtime's error handler: streamed status objects, `stream: false`, errors as `{"error"}`.
 */
import { strict as assert } from "node:assert";
import { rm } from "node:fs/promises";
import Fastify, { type FastifyInstance } from "fastify";
import { after, before, describe, it } from "node:test";
import type { ProgressEvent } from "../../../core/progress.js";
import type { LocalStore } from "../../../core/store.js";
import { RegistryClient } from "../../../registry/client/index.js";
import { sendError } from "../../../runtime/server/http.js";
import { pullPushRoutes } from "../../../runtime/server/routes/pull-push.js";
import { buildModel, newStore, type Peer, startPeer } from "./helpers.js";

describe("/api/pull and /api/push", () => {
  let peer: Peer;
  let src: LocalStore;
  let dst: LocalStore;
  let pushApp: FastifyInstance;
  let pullApp: FastifyInstance;
  let pushBase: string;
  let pullBase: string;
  const client = new RegistryClient();
  let name: string;

  const appFor = async (store: LocalStore): Promise<[FastifyInstance, string]> => {
    const app = Fastify();
    app.setErrorHandler((err, _req, reply) => sendError(reply, err));
    pullPushRoutes(client)(app, { store });
    return [app, await app.listen({ host: "127.0.0.1", port: 0 })];
  };

  before(async () => {
    peer = await startPeer("mf");
    src = await newStore();
    dst = await newStore();
    name = `${peer.host}/api/model:latest`;
    await buildModel(src, src.root, name, { bigLayerBytes: 256 * 1024 });
    [pushApp, pushBase] = await appFor(src);
    [pullApp, pullBase] = await appFor(dst);
  });
  after(async () => {
    await pushApp.close();
    await pullApp.close();
    await client.close();
    await peer.close();
    await rm(src.root, { recursive: true, force: true });
    await rm(dst.root, { recursive: true, force: true });
  });

  const post = (base: string, path: string, body: unknown) =>
    fetch(`${base}${path}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  it("push streams pushing events and ends with success", async () => {
    const res = await post(pushBase, "/api/push", { model: name, insecure: true });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as ProgressEvent);
    assert.equal(lines.at(-1)!.status, "success");
    assert.ok(lines.some((e) => /^pushing [0-9a-f]{12}$/.test(e.status) && e.digest && e.total === e.completed));
  });

  it("pull streams the status objects of the API document", async () => {
    const res = await post(pullBase, "/api/pull", { model: name, insecure: true });
    assert.equal(res.status, 200);
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l) as ProgressEvent);
    assert.equal(lines[0]!.status, "pulling manifest");
    assert.deepEqual(lines.slice(-3).map((e) => e.status), ["verifying sha256 digest", "writing manifest", "success"]);
    const layer = lines.find((e) => e.status.startsWith("pulling ") && e.digest)!;
    assert.equal(layer.status, `pulling ${layer.digest!.slice(7, 19)}`);
    assert.equal(typeof layer.total, "number");
    assert.equal((await dst.readModel(name)).digest, (await src.readModel(name)).digest);
  });

  it("stream: false answers only the last object", async () => {
    const res = await post(pullBase, "/api/pull", { model: name, insecure: true, stream: false });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "success" });
  });

  it("an unknown model is an error object with the registry's status", async () => {
    const res = await post(pullBase, "/api/pull", { model: `${peer.host}/api/missing:latest`, insecure: true, stream: false });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: string };
    assert.match(body.error, /not found/);
  });

  it("a missing model name is a 400", async () => {
    const res = await post(pullBase, "/api/pull", {});
    assert.equal(res.status, 400);
  });
});
