/**
 * Prometheus metrics of the registry (`GET /metrics`, issue 17): off by default; the factory with an
 * injected prom-client Registry and the real `mf registry serve --metrics` / `--metrics-addr` binary,
 * driven by real pushes and pulls; the scrape is parsed and its figures must move by what the traffic
 * did, with no repository name, tag or digest in any label.
 */
import { strict as assert } from "node:assert";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { LocalStore } from "../../core/store.js";
import { RegistryClient } from "../../registry/client/index.js";
import { addApiKey } from "../../registry/server/access-edit.js";
import { AccessFile, createTokenAuth, FsDriver } from "../../registry/server/index.js";
import { createRegistryMetrics, templateOf } from "../../registry/server/metrics.js";
import { ROUTES } from "../../registry/server/routes.js";
import { Scrape, scrape, settledScrape } from "../helpers/prom.js";
import { buildModel } from "./client/helpers.js";
import { expectError, pushBlob, startUpload } from "./oci-client.js";
import { Cleanup, startInProcess, type InProcessRegistry } from "./peers.js";
import { runMf } from "./run-mf.js";

const REQ = "mf_registry_http_requests_total";
const DUR = "mf_registry_http_request_duration_seconds_count";
const IN_FLIGHT = "mf_registry_http_requests_in_flight";
const MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}";

/** The blob sizes of a model in a store: config and layers. */
async function blobBytes(store: LocalStore, name: string): Promise<number> {
  const m = (await store.readModel(name)).manifest;
  return [m.config, ...m.layers].reduce((n, d) => n + d.size, 0);
}

/** No repository name, tag or digest of the traffic in any label or line of the scrape. */
function assertNoNames(s: Scrape, ...words: string[]): void {
  for (const w of words) assert.ok(!s.text.includes(w), `the scrape names ${w}`);
  for (const sample of s.samples) for (const v of Object.values(sample.labels)) assert.doesNotMatch(v, /sha256:|[0-9a-f]{32}/, `label value ${v}`);
}

describe("registry metrics", () => {
  const c = new Cleanup();
  const undo: (() => unknown)[] = [];
  after(async () => {
    for (const f of undo.reverse()) await f();
    await c.cleanup();
  });

  it("route templates come from the route table, with every capture named", () => {
    const templates = ROUTES.map(templateOf);
    assert.ok(templates.includes("/v2/"));
    assert.ok(templates.includes("/v2/{name}/manifests/{reference}"));
    assert.ok(templates.includes("/v2/{name}/blobs/uploads/"));
    assert.ok(templates.includes("/v2/{name}/blobs/uploads/{session}"));
    assert.ok(templates.includes("/v2/{name}/blobs/{digest}"));
    assert.ok(templates.includes("/_mf/blobs/{digest}"));
    for (const t of templates) assert.doesNotMatch(t, /[()[\]\\^$+*?]/, `${t} still has regex syntax`);
  });

  it("are off unless asked for: GET /metrics is a 404 in the API's envelope", async () => {
    const reg = await startInProcess();
    undo.push(() => reg.close());
    await expectError(await fetch(`${reg.base}/metrics`), 404, "NAME_UNKNOWN");
  });

  describe("on the registry's own address (the factory, a real push and pull)", () => {
    let reg: InProcessRegistry;
    let dir: string;
    before(async () => {
      dir = await c.tempDir("mf-metrics-");
      reg = await startInProcess({ metrics: createRegistryMetrics(new Registry()), serveMetrics: true });
      undo.push(() => reg.close());
    });
    const scrapeNow = () => settledScrape(`${reg.base}/metrics`, IN_FLIGHT, 1);

    it("requests by route template and status, latency, and blob bytes move with a push and a pull", async () => {
      const host = new URL(reg.base).host;
      const name = `${host}/team-secret/llama-private:v7`;
      const src = new LocalStore(join(dir, "src"));
      await buildModel(src, dir, name);
      const bytes = await blobBytes(src, name);
      const client = new RegistryClient({ retries: 0 });
      undo.push(() => client.close());

      const s0 = await scrapeNow();
      await client.push(src, name, { insecure: true });
      const s1 = await scrapeNow();
      assert.equal(s1.value(REQ, { method: "PUT", route: MANIFEST_ROUTE, status: "201" }) - s0.value(REQ, { method: "PUT", route: MANIFEST_ROUTE, status: "201" }), 1);
      assert.equal(s1.value("mf_registry_blob_bytes_received_total") - s0.value("mf_registry_blob_bytes_received_total"), bytes, "every blob byte pushed is counted once");
      assert.ok(s1.value(DUR, { method: "PUT", route: MANIFEST_ROUTE }) > s0.value(DUR, { method: "PUT", route: MANIFEST_ROUTE }), "the latency histogram counted the PUT");
      const uploads = s1.value(REQ, { route: "/v2/{name}/blobs/uploads/{session}" }) + s1.value(REQ, { route: "/v2/{name}/blobs/uploads/" });
      assert.ok(uploads >= 2, `blob uploads counted under their templates (${uploads})`);
      assert.equal(s1.value("mf_registry_upload_sessions_open"), 0, "every session of the push is finished");

      const dst = new LocalStore(join(dir, "dst"));
      await client.pull(dst, name, { insecure: true });
      const s2 = await scrapeNow();
      assert.equal(s2.value("mf_registry_blob_bytes_sent_total") - s1.value("mf_registry_blob_bytes_sent_total"), bytes, "every blob byte pulled is counted once");
      assert.ok(s2.value(REQ, { method: "GET", route: MANIFEST_ROUTE, status: "200" }) > s1.value(REQ, { method: "GET", route: MANIFEST_ROUTE, status: "200" }));
      const blobs = 1 + (await src.readModel(name)).manifest.layers.length;
      assert.equal(s2.value(REQ, { method: "GET", route: "/v2/{name}/blobs/{digest}", status: "307" }) - s1.value(REQ, { method: "GET", route: "/v2/{name}/blobs/{digest}", status: "307" }), blobs, "each blob GET redirected once");
      assert.ok(s2.value(REQ, { method: "GET", route: "/_mf/blobs/{digest}" }) - s1.value(REQ, { method: "GET", route: "/_mf/blobs/{digest}" }) >= blobs, "signed blob downloads under their template");
      // the scrape itself is a request of its own route
      assert.equal(s2.value(REQ, { method: "GET", route: "/metrics", status: "200" }) - s1.value(REQ, { method: "GET", route: "/metrics", status: "200" }), 1);
      assertNoNames(s2, "team-secret", "llama-private", "v7", (await src.readModel(name)).digest.slice(7, 19));
    });

    it("upload sessions open go up when begun and back down when cancelled", async () => {
      const s0 = await scrapeNow();
      const a = await startUpload(reg.base, "gauge/one");
      const b = await startUpload(reg.base, "gauge/two");
      const s1 = await scrapeNow();
      assert.equal(s1.value("mf_registry_upload_sessions_open") - s0.value("mf_registry_upload_sessions_open"), 2);
      for (const loc of [a, b]) assert.equal((await fetch(loc, { method: "DELETE" })).status, 204);
      const s2 = await scrapeNow();
      assert.equal(s2.value("mf_registry_upload_sessions_open"), s0.value("mf_registry_upload_sessions_open"));
    });

    it("every unknown path counts under one label, whatever the path", async () => {
      const s0 = await scrapeNow();
      const paths = ["/nowhere", "/v2/some-repo/nothing/here", "/_mf/other", "/metricsz"];
      for (const p of paths) assert.equal((await fetch(`${reg.base}${p}`)).status, 404);
      const s1 = await scrapeNow();
      assert.equal(s1.value(REQ, { route: "unmatched", status: "404" }) - s0.value(REQ, { route: "unmatched", status: "404" }), paths.length);
      assertNoNames(s1, "nowhere", "some-repo", "metricsz");
      // an unknown manifest of a valid name is the route's 404, not an unknown path
      await expectError(await fetch(`${reg.base}/v2/some-repo/manifests/nope`), 404, "MANIFEST_UNKNOWN");
      const s2 = await scrapeNow();
      assert.equal(s2.value(REQ, { route: MANIFEST_ROUTE, status: "404" }) - s1.value(REQ, { route: MANIFEST_ROUTE, status: "404" }), 1);
    });

    it("gc runs and bytes freed come from `mf registry gc` on the same storage", async () => {
      const root = reg.root;
      await pushBlob(reg.base, "gc/orphan", Buffer.from("an orphan blob no manifest references, for gc to free"));
      const s0 = await scrapeNow();
      assert.equal(s0.value("mf_registry_gc_runs_total"), 0);

      const dry = await runMf(["registry", "gc", "--root", root, "--grace", "0s", "--dry-run"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal((await scrapeNow()).value("mf_registry_gc_runs_total"), 0, "a dry run records nothing");

      const gc = await runMf(["registry", "gc", "--root", root, "--grace", "0s"]);
      assert.equal(gc.code, 0, gc.stderr);
      const freed = Number(/blobs removed \((\d+) bytes\)/.exec(gc.stdout)?.[1]);
      assert.ok(freed > 0, gc.stdout);
      const s1 = await scrapeNow();
      assert.equal(s1.value("mf_registry_gc_runs_total"), 1);
      assert.equal(s1.value("mf_registry_gc_freed_bytes_total"), freed);
      assert.ok(s1.value("mf_registry_gc_blobs_removed_total") >= 1);
      assert.ok(s1.value("mf_registry_gc_last_run_timestamp_seconds") > 0);
    });
  });

  it("with an access file: a scrape needs a key the file knows, and denials are counted by action", async () => {
    const root = await c.tempDir("mf-metrics-auth-");
    const accessPath = join(root, "access.yaml");
    const { text, secret } = addApiKey("anonymous: {}\n", "prometheus", { "ci/*": ["pull"] });
    await writeFile(accessPath, text);
    const access = await AccessFile.open(accessPath, { pollMs: 200 });
    undo.push(() => access.close());
    const storage = new FsDriver({ root: join(root, "data") });
    const metrics = createRegistryMetrics(new Registry());
    let listening = "";
    const auth = createTokenAuth({ access, secret: "test-secret-0123456789", storage, publicUrl: () => listening, onDenied: (d) => metrics.denied(d.action) });
    const reg = await startInProcess({ storage, auth, metrics, serveMetrics: true }, join(root, "data"));
    listening = reg.base;
    undo.push(() => reg.close());
    const basic = { authorization: `Basic ${Buffer.from(`prometheus:${secret}`).toString("base64")}` };

    const anonymous = await fetch(`${reg.base}/metrics`);
    await expectError(anonymous, 401, "UNAUTHORIZED");
    assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer realm=/);
    await expectError(await fetch(`${reg.base}/metrics`, { headers: { authorization: "Basic " + Buffer.from("x:wrong").toString("base64") } }), 401, "UNAUTHORIZED");

    const s0 = await settledScrape(`${reg.base}/metrics`, IN_FLIGHT, 1, basic);
    await expectError(await fetch(`${reg.base}/v2/other/model/manifests/latest`, { headers: basic }), 403, "DENIED");
    await expectError(await fetch(`${reg.base}/v2/other/model/blobs/uploads/`, { method: "POST", headers: basic }), 403, "DENIED");
    const s1 = await settledScrape(`${reg.base}/metrics`, IN_FLIGHT, 1, basic);
    assert.equal(s1.value("mf_registry_auth_denials_total", { action: "pull" }) - s0.value("mf_registry_auth_denials_total", { action: "pull" }), 1);
    assert.equal(s1.value("mf_registry_auth_denials_total", { action: "push" }) - s0.value("mf_registry_auth_denials_total", { action: "push" }), 1);
    assert.equal(s1.value(REQ, { route: "/metrics", status: "401" }), 2, "refused scrapes are counted too");
    assertNoNames(s1, "other/model");
  });

  describe("mf registry serve (the binary)", () => {
    it("--metrics-addr serves them on their own address only; mf push moves them", async () => {
      const dir = await c.tempDir("mf-metrics-cli-");
      const reg = await c.serve(join(dir, "root"), ["--metrics-addr", "127.0.0.1:0"]);
      const at = /metrics at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(reg.output())?.[1];
      assert.ok(at, reg.output());
      assert.notEqual(at, reg.base);
      await expectError(await fetch(`${reg.base}/metrics`), 404, "NAME_UNKNOWN");
      assert.equal((await fetch(`${at}/v2/`)).status, 404, "the metrics address serves nothing else");

      const host = new URL(reg.base).host;
      const name = `${host}/cli-team/cli-model:latest`;
      const models = join(dir, "models");
      await buildModel(new LocalStore(models), dir, name);
      const bytes = await blobBytes(new LocalStore(models), name);
      const s0 = await settledScrape(`${at}/metrics`, IN_FLIGHT, 0);
      const push = await runMf(["push", name, "--insecure", "-q"], { MF_MODELS: models, MF_HOME: join(dir, "home") });
      assert.equal(push.code, 0, push.stderr);
      const s1 = await settledScrape(`${at}/metrics`, IN_FLIGHT, 0);
      assert.equal(s1.value(REQ, { method: "PUT", route: MANIFEST_ROUTE, status: "201" }) - s0.value(REQ, { method: "PUT", route: MANIFEST_ROUTE, status: "201" }), 1);
      assert.equal(s1.value("mf_registry_blob_bytes_received_total") - s0.value("mf_registry_blob_bytes_received_total"), bytes);
      assert.ok(s1.has("process_cpu_seconds_total"), "the process's own metrics are there");
      assert.ok(!s1.has("mf_serve_http_requests_total"), "no runtime metrics in the registry's registry");
      assertNoNames(s1, "cli-team", "cli-model");
    });

    it("metrics: true in --config serves them on --addr; without it /metrics is a 404", async () => {
      const dir = await c.tempDir("mf-metrics-cfg-");
      const config = join(dir, "registry.yaml");
      await writeFile(config, "metrics: true\n");
      const on = await c.serve(join(dir, "on"), ["--config", config]);
      const off = await c.serve(join(dir, "off"));
      assert.match(on.output(), new RegExp(`metrics at ${on.base}/metrics`));
      const s = await scrape(`${on.base}/metrics`);
      assert.ok(s.has("mf_registry_upload_sessions_open"));
      await expectError(await fetch(`${off.base}/metrics`), 404, "NAME_UNKNOWN");
    });
  });
});
