/**
 * Our conformance suite (registry.md, last section), written once as a function of a base URL so that
 * it runs against `mf registry serve` (every storage driver) and against any other registry. A peer's
 * known deviations are named in `deviations`; each one replaces exactly the assertion it concerns by one of the peer's behaviour.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  expectError, pushBlob, pushImage, randomRepo, resolveLocation, sha256, sha512, startUpload, withQuery,
} from "./oci-client.js";

export type Deviation =
  /** PATCH ignores the Content-Range start: a gap or a repeated chunk is appended (distribution 2.8) */
  | "content-range-ignored"
  /** `POST ?digest=` with a body opens a session (202) instead of storing the blob (distribution 2.8) */
  | "no-monolithic-post"
  /** no referrers API: 404 (distribution 2.8) */
  | "no-referrers"
  /** invalid names and tags answered with a plain 404 or a 500 instead of 400 NAME_INVALID / TAG_INVALID (distribution 2.8) */
  | "invalid-ref-not-400"
  /** the 416 for an unsatisfiable Range declares a Content-Length its body does not have (distribution 2.8) */
  | "range-416-malformed"
  /** tags listed in storage order, not sorted (distribution 2.8) */
  | "tags-unsorted"
  /** `n`/`last` ignored on tags/list: every tag on one page, no Link (distribution 2.8) */
  | "no-tag-pagination"
  /** sha512 digests refused */
  | "no-sha512"
  /** JSON answers (errors, tags, catalog, ping) carry `application/json; charset=utf-8` (distribution 2.8) */
  | "json-charset"
  /** `?tag=` on a manifest PUT is ignored: no tag made, no OCI-Tag header (distribution 2.8) */
  | "no-tag-query"
  /** a manifest PUT with a generic Content-Type (application/octet-stream) is refused (distribution 2.8) */
  | "generic-manifest-type-refused"
  /** blobs and manifests pushed by their sha512 digest are answered (and stored) under their sha256 digest (distribution 2.8) */
  | "sha512-canonical-sha256";

export interface ConformanceOptions {
  deviations?: Deviation[];
}

export function registryConformance(label: string, getBase: () => string, options: ConformanceOptions = {}): void {
  const dev = new Set(options.deviations ?? []);
  describe(`registry conformance: ${label}`, () => {
    const b = () => getBase();

    it("ping: GET /v2/ → 200 with the API version header", async () => {
      const res = await fetch(`${b()}/v2/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
      await res.arrayBuffer();
    });

    it("missing blob → 404 BLOB_UNKNOWN (GET with envelope, HEAD without body)", async () => {
      const repo = randomRepo();
      await pushBlob(b(), repo, Buffer.from("x"));
      const d = sha256(randomBytes(8));
      await expectError(await fetch(`${b()}/v2/${repo}/blobs/${d}`), 404, "BLOB_UNKNOWN");
      const head = await fetch(`${b()}/v2/${repo}/blobs/${d}`, { method: "HEAD" });
      assert.equal(head.status, 404);
    });

    it("single-POST upload: 201, Location, Docker-Content-Digest; bytes read back", async () => {
      const repo = randomRepo();
      const data = randomBytes(5000);
      const d = sha256(data);
      const res = await fetch(`${b()}/v2/${repo}/blobs/uploads/?digest=${d}`, { method: "POST", body: data, headers: { "content-type": "application/octet-stream" } });
      if (dev.has("no-monolithic-post")) {
        assert.equal(res.status, 202, "peer deviation: a monolithic POST opens a session");
        await expectError(await fetch(`${b()}/v2/${repo}/blobs/${d}`), 404, "BLOB_UNKNOWN");
        return;
      }
      assert.equal(res.status, 201);
      assert.equal(res.headers.get("docker-content-digest"), d);
      assert.ok(res.headers.get("location"));
      const get = await fetch(`${b()}/v2/${repo}/blobs/${d}`);
      assert.equal(get.status, 200);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
      const head = await fetch(`${b()}/v2/${repo}/blobs/${d}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "5000");
      assert.equal(head.headers.get("docker-content-digest"), d);
    });

    it("POST then PUT with the whole body", async () => {
      const repo = randomRepo();
      const res = await fetch(`${b()}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      assert.equal(res.status, 202);
      assert.ok(res.headers.get("docker-upload-uuid"));
      assert.equal(res.headers.get("range"), "0-0");
      const data = randomBytes(3000);
      const put = await fetch(withQuery(resolveLocation(b(), res), `digest=${sha256(data)}`), {
        method: "PUT", body: data, headers: { "content-type": "application/octet-stream" },
      });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get("docker-content-digest"), sha256(data));
      const get = await fetch(`${b()}/v2/${repo}/blobs/${sha256(data)}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    });

    it("streamed PATCH without Content-Range, then PUT without body", async () => {
      const repo = randomRepo();
      const loc = await startUpload(b(), repo);
      const data = randomBytes(70_000);
      const patch = await fetch(loc, { method: "PATCH", body: data, headers: { "content-type": "application/octet-stream" } });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get("range"), `0-${data.length - 1}`);
      const put = await fetch(withQuery(resolveLocation(b(), patch), `digest=${sha256(data)}`), { method: "PUT" });
      assert.equal(put.status, 201, await put.text());
    });

    it("three chunked PATCHes with correct Range answers", async () => {
      const repo = randomRepo();
      let loc = await startUpload(b(), repo);
      const parts = [randomBytes(1000), randomBytes(2000), randomBytes(500)];
      let offset = 0;
      for (const p of parts) {
        const res = await fetch(loc, {
          method: "PATCH", body: p,
          headers: { "content-type": "application/octet-stream", "content-range": `${offset}-${offset + p.length - 1}`, "content-length": String(p.length) },
        });
        assert.equal(res.status, 202, await res.text());
        offset += p.length;
        assert.equal(res.headers.get("range"), `0-${offset - 1}`);
        loc = resolveLocation(b(), res);
      }
      const all = Buffer.concat(parts);
      const put = await fetch(withQuery(loc, `digest=${sha256(all)}`), { method: "PUT" });
      assert.equal(put.status, 201, await put.text());
      const get = await fetch(`${b()}/v2/${repo}/blobs/${sha256(all)}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), all);
    });

    it("a gap → 416, the session intact and GET status unchanged; a repeated chunk → 416", async () => {
      const repo = randomRepo();
      let loc = await startUpload(b(), repo);
      const first = randomBytes(100);
      let res = await fetch(loc, { method: "PATCH", body: first, headers: { "content-range": "0-99", "content-type": "application/octet-stream" } });
      assert.equal(res.status, 202);
      loc = resolveLocation(b(), res);
      const gapBytes = randomBytes(10);
      const gap = await fetch(loc, { method: "PATCH", body: gapBytes, headers: { "content-range": "200-209", "content-type": "application/octet-stream" } });
      let total = first;
      if (dev.has("content-range-ignored")) {
        assert.equal(gap.status, 202, "peer deviation: the gap is appended");
        total = Buffer.concat([total, gapBytes]);
        loc = resolveLocation(b(), gap);
      } else {
        await expectError(gap, 416, "RANGE_INVALID");
      }
      const status = await fetch(loc);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get("range"), `0-${total.length - 1}`);
      const repeat = await fetch(loc, { method: "PATCH", body: first, headers: { "content-range": "0-99", "content-type": "application/octet-stream" } });
      if (dev.has("content-range-ignored")) {
        assert.equal(repeat.status, 202, "peer deviation: the repeated chunk is appended");
        total = Buffer.concat([total, first]);
        loc = resolveLocation(b(), repeat);
      } else {
        await expectError(repeat, 416, "RANGE_INVALID");
        const again = await fetch(loc);
        assert.equal(again.headers.get("range"), "0-99");
      }
      const second = randomBytes(50);
      res = await fetch(loc, { method: "PATCH", body: second, headers: { "content-range": `${total.length}-${total.length + 49}`, "content-type": "application/octet-stream" } });
      assert.equal(res.status, 202, await res.text());
      const all = Buffer.concat([total, second]);
      const put = await fetch(withQuery(resolveLocation(b(), res), `digest=${sha256(all)}`), { method: "PUT" });
      assert.equal(put.status, 201, await put.text());
      const get = await fetch(`${b()}/v2/${repo}/blobs/${sha256(all)}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), all);
    });

    it("wrong digest on PUT → 400 DIGEST_INVALID and nothing stored", async () => {
      const repo = randomRepo();
      const loc = await startUpload(b(), repo);
      const data = randomBytes(100);
      const claimed = sha256(randomBytes(100));
      await expectError(await fetch(withQuery(loc, `digest=${claimed}`), { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } }), 400, "DIGEST_INVALID");
      assert.equal((await fetch(`${b()}/v2/${repo}/blobs/${claimed}`, { method: "HEAD" })).status, 404);
      assert.equal((await fetch(`${b()}/v2/${repo}/blobs/${sha256(data)}`, { method: "HEAD" })).status, 404);
    });

    it("cancel → 204, then the session is gone (404 BLOB_UPLOAD_UNKNOWN)", async () => {
      const repo = randomRepo();
      const loc = await startUpload(b(), repo);
      const del = await fetch(loc, { method: "DELETE" });
      assert.equal(del.status, 204);
      await expectError(await fetch(loc, { method: "PATCH", body: "x", headers: { "content-type": "application/octet-stream" } }), 404, "BLOB_UPLOAD_UNKNOWN");
      await expectError(await fetch(loc), 404, "BLOB_UPLOAD_UNKNOWN");
    });

    it("cross-repository mount: 201 when readable from `from`, 202 session otherwise", async () => {
      const src = randomRepo();
      const dst = randomRepo();
      const data = randomBytes(400);
      const d = await pushBlob(b(), src, data);
      const mounted = await fetch(`${b()}/v2/${dst}/blobs/uploads/?mount=${d}&from=${src}`, { method: "POST" });
      assert.equal(mounted.status, 201, await mounted.text());
      assert.equal(mounted.headers.get("docker-content-digest"), d);
      const get = await fetch(`${b()}/v2/${dst}/blobs/${d}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
      const missing = sha256(randomBytes(9));
      const fallback = await fetch(`${b()}/v2/${dst}/blobs/uploads/?mount=${missing}&from=${src}`, { method: "POST" });
      assert.equal(fallback.status, 202);
      assert.ok(fallback.headers.get("location"));
      await fallback.arrayBuffer();
    });

    it("blob Range: 206 with Content-Range, unsatisfiable → 416", async () => {
      const repo = randomRepo();
      const data = randomBytes(1000);
      const d = await pushBlob(b(), repo, data);
      const res = await fetch(`${b()}/v2/${repo}/blobs/${d}`, { headers: { range: "bytes=100-199" } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get("content-range"), "bytes 100-199/1000");
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(100, 200));
      // past the end, and last < first (RFC 9110: an invalid range; the OCI suite asks for 416)
      for (const range of ["bytes=5000-6000", "bytes=500-0"]) {
        const bad = await fetch(`${b()}/v2/${repo}/blobs/${d}`, { headers: { range } });
        assert.equal(bad.status, 416, range);
        // RFC 9110 asks for the current length when the range misses the blob (the invalid one: may)
        if (range === "bytes=5000-6000") assert.equal(bad.headers.get("content-range"), "bytes */1000", range);
        if (dev.has("range-416-malformed")) await bad.body?.cancel().catch(() => {});
        else await bad.arrayBuffer();
      }
    });

    it("manifest by tag and by digest: exact bytes, media type, digest header; HEAD too", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "v1");
      for (const ref of ["v1", m.digest]) {
        const res = await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { headers: { accept: m.mediaType } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("content-type"), m.mediaType);
        assert.equal(res.headers.get("docker-content-digest"), m.digest);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), m.bytes);
        const head = await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { method: "HEAD", headers: { accept: m.mediaType } });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get("content-length"), String(m.bytes.length));
      }
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/nope`, { headers: { accept: m.mediaType } }), 404, "MANIFEST_UNKNOWN");
    });

    it("a manifest referencing a missing blob → 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const repo = randomRepo();
      const cd = await pushBlob(b(), repo, Buffer.from("{}"));
      const body = JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: 2 },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha256(randomBytes(5)), size: 5 }],
      });
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/t`, { method: "PUT", body, headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" } }), 400, "MANIFEST_BLOB_UNKNOWN");
    });

    it("a ~4 MB manifest is accepted and read back exactly", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "big", { annotations: { pad: "x".repeat(4 * 1024 * 1024 - 2000) } });
      assert.ok(m.bytes.length > 4_000_000);
      const res = await fetch(`${b()}/v2/${repo}/manifests/big`, { headers: { accept: m.mediaType } });
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), m.bytes);
    });

    it("an image index is stored as exact bytes; a missing child manifest → 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const repo = randomRepo();
      const amd = await pushImage(b(), repo, "amd64");
      const arm = await pushImage(b(), repo, "arm64");
      const mediaType = "application/vnd.oci.image.index.v1+json";
      const child = (m: typeof amd, architecture: string) => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: { architecture, os: "linux" } });
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests: [child(amd, "amd64"), child(arm, "arm64")] }, null, 3));
      const put = await fetch(`${b()}/v2/${repo}/manifests/multi`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get("docker-content-digest"), sha256(bytes));
      const get = await fetch(`${b()}/v2/${repo}/manifests/multi`, { headers: { accept: mediaType } });
      assert.equal(get.status, 200);
      assert.equal(get.headers.get("content-type"), mediaType);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes);
      const ghost = { mediaType: amd.mediaType, digest: sha256(randomBytes(16)), size: 500, platform: { architecture: "s390x", os: "linux" } };
      const broken = JSON.stringify({ schemaVersion: 2, mediaType, manifests: [child(amd, "amd64"), ghost] });
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/broken`, { method: "PUT", body: broken, headers: { "content-type": mediaType } }), 400, "MANIFEST_BLOB_UNKNOWN");
    });

    it("sha512 blob upload and read", async () => {
      const repo = randomRepo();
      const data = randomBytes(2048);
      const d = sha512(data);
      const loc = await startUpload(b(), repo);
      const put = await fetch(withQuery(loc, `digest=${d}`), { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
      if (dev.has("no-sha512")) {
        assert.ok(put.status >= 400, `peer deviation: sha512 refused, got ${put.status}`);
        await put.arrayBuffer();
        return;
      }
      assert.equal(put.status, 201, await put.text());
      const get = await fetch(`${b()}/v2/${repo}/blobs/${d}`);
      assert.equal(get.status, 200);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    });

    it("every answer carries exactly its Content-Type: no charset appended, none on empty answers", async () => {
      const repo = randomRepo();
      const json = dev.has("json-charset") ? "application/json; charset=utf-8" : "application/json";
      const index = "application/vnd.oci.image.index.v1+json";
      const expectType = async (label: string, res: Response, type: string | null) => {
        assert.equal(res.headers.get("content-type"), type, `${label}: ${res.status}`);
        await res.arrayBuffer();
      };
      await expectType("ping", await fetch(`${b()}/v2/`), json);
      const m = await pushImage(b(), repo, "v1");
      const subjectDesc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
      const sig = await pushImage(b(), repo, "sig", { artifactType: "application/vnd.example.signature", subject: subjectDesc });
      const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: index, manifests: [{ ...subjectDesc, platform: { architecture: "amd64", os: "linux" } }] }));
      const putIdx = await fetch(`${b()}/v2/${repo}/manifests/multi`, { method: "PUT", body: idx, headers: { "content-type": index } });
      assert.equal(putIdx.status, 201, await putIdx.text());
      for (const [label, ref, type] of [["manifest by tag", "v1", m.mediaType], ["manifest by digest", m.digest, m.mediaType], ["index", "multi", index], ["referrer", sig.digest, m.mediaType]] as const) {
        await expectType(`GET ${label}`, await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { headers: { accept: `${m.mediaType}, ${index}` } }), type);
        await expectType(`HEAD ${label}`, await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { method: "HEAD", headers: { accept: `${m.mediaType}, ${index}` } }), type);
      }
      if (!dev.has("no-referrers")) {
        await expectType("referrers", await fetch(`${b()}/v2/${repo}/referrers/${m.digest}`), index);
        await expectType("filtered referrers", await fetch(`${b()}/v2/${repo}/referrers/${m.digest}?artifactType=application/vnd.example.signature`), index);
        await expectType("referrers of nothing", await fetch(`${b()}/v2/${repo}/referrers/${sha256("none")}`), index);
      }
      await expectType("tags", await fetch(`${b()}/v2/${repo}/tags/list`), json);
      await expectType("tags page", await fetch(`${b()}/v2/${repo}/tags/list?n=1`), json);
      await expectType("catalog", await fetch(`${b()}/v2/_catalog?n=5`), json);
      const data = randomBytes(300);
      const d = await pushBlob(b(), repo, data);
      await expectType("blob", await fetch(`${b()}/v2/${repo}/blobs/${d}`), "application/octet-stream");
      await expectType("blob range", await fetch(`${b()}/v2/${repo}/blobs/${d}`, { headers: { range: "bytes=1-10" } }), "application/octet-stream");
      // errors: the envelope is JSON, whatever the route
      await expectType("404 blob", await fetch(`${b()}/v2/${repo}/blobs/${sha256(randomBytes(4))}`), json);
      await expectType("404 manifest", await fetch(`${b()}/v2/${repo}/manifests/nope`), json);
      await expectType("404 repository", await fetch(`${b()}/v2/${randomRepo()}/tags/list`), json);
      await expectType("400 digest", await fetch(`${b()}/v2/${repo}/blobs/sha256:XYZ`), json);
      await expectType("400 manifest", await fetch(`${b()}/v2/${repo}/manifests/bad`, { method: "PUT", body: "{", headers: { "content-type": m.mediaType } }), json);
      if (!dev.has("range-416-malformed")) {
        await expectType("416", await fetch(`${b()}/v2/${repo}/blobs/${d}`, { headers: { range: "bytes=900-1000" } }), json);
      }
      if (!dev.has("invalid-ref-not-400")) {
        await expectType("400 name", await fetch(`${b()}/v2/Upper/tags/list`), json);
        await expectType("400 escape", await fetch(`${b()}/v2/%ff/tags/list`), json);
      }
      // answers without a body say nothing of a type
      const post = await fetch(`${b()}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      await expectType("202 upload", post, null);
      const loc = resolveLocation(b(), post);
      await expectType("204 upload status", await fetch(loc), null);
      const chunk = randomBytes(10);
      const patch = await fetch(loc, { method: "PATCH", body: chunk, headers: { "content-type": "application/octet-stream" } });
      await expectType("202 patch", patch, null);
      await expectType("201 blob", await fetch(withQuery(resolveLocation(b(), patch), `digest=${sha256(chunk)}`), { method: "PUT" }), null);
      await expectType("201 manifest", await fetch(`${b()}/v2/${repo}/manifests/again`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } }), null);
      await expectType("202 delete", await fetch(`${b()}/v2/${repo}/manifests/${sig.digest}`, { method: "DELETE" }), null);
    });

    it("a malformed percent-escape in the path → 400 in the OCI envelope", async () => {
      const repo = randomRepo();
      for (const [path, code] of [["%ff/tags/list", "NAME_INVALID"], [`${repo}%zz/tags/list`, "NAME_INVALID"], [`${repo}/manifests/%ff`, "TAG_INVALID"], [`${repo}/blobs/sha256:%ff`, "DIGEST_INVALID"]] as const) {
        const res = await fetch(`${b()}/v2/${path}`);
        if (dev.has("invalid-ref-not-400")) {
          assert.ok(res.status === 404 || res.status === 400, `peer deviation: 404, got ${res.status}`);
          await res.arrayBuffer();
        } else {
          await expectError(res, 400, code);
          assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
        }
      }
    });

    it("a manifest whose Content-Type contradicts its mediaType → 400 MANIFEST_INVALID, nothing stored", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "ok");
      const docker = "application/vnd.docker.distribution.manifest.v2+json";
      const put = await fetch(`${b()}/v2/${repo}/manifests/liar`, { method: "PUT", body: m.bytes, headers: { "content-type": docker } });
      await expectError(put, 400, "MANIFEST_INVALID");
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/liar`, { headers: { accept: `${m.mediaType}, ${docker}` } }), 404, "MANIFEST_UNKNOWN");
      // a generic type, or the same type with parameters or in other case, is no contradiction
      const fine = [["params", `${m.mediaType}; charset=utf-8`], ["case", m.mediaType.toUpperCase()]];
      if (dev.has("generic-manifest-type-refused")) {
        const generic = await fetch(`${b()}/v2/${repo}/manifests/generic`, { method: "PUT", body: m.bytes, headers: { "content-type": "application/octet-stream" } });
        await expectError(generic, 400, "MANIFEST_INVALID");
      } else {
        fine.push(["generic", "application/octet-stream"]);
      }
      for (const [tag, type] of fine) {
        const res = await fetch(`${b()}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: m.bytes, headers: { "content-type": type! } });
        assert.equal(res.status, 201, `${type}: ${await res.text()}`);
      }
    });

    it("manifest PUT by digest with ?tag=: each tag made, each named in OCI-Tag", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "first");
      const put = await fetch(`${b()}/v2/${repo}/manifests/${m.digest}?tag=v2&tag=stable&tag=v2`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } });
      assert.equal(put.status, 201, await put.text());
      assert.equal(put.headers.get("docker-content-digest"), m.digest);
      const tags = async () => (await (await fetch(`${b()}/v2/${repo}/tags/list`)).json() as { tags: string[] }).tags.sort();
      if (dev.has("no-tag-query")) {
        assert.equal(put.headers.get("oci-tag"), null, "peer deviation: ?tag= ignored");
        assert.deepEqual(await tags(), ["first"]);
        return;
      }
      const named = (put.headers.get("oci-tag") ?? "").split(",").map((t) => t.trim()).sort();
      assert.deepEqual(named, ["stable", "v2"]);
      assert.deepEqual(await tags(), ["first", "stable", "v2"]);
      for (const tag of ["v2", "stable"]) {
        const get = await fetch(`${b()}/v2/${repo}/manifests/${tag}`, { headers: { accept: m.mediaType } });
        assert.equal(get.headers.get("docker-content-digest"), m.digest);
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), m.bytes);
      }
      // an invalid tag refuses the whole PUT: nothing tagged
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/${m.digest}?tag=ok2&tag=-bad`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } }), 400, "TAG_INVALID");
      assert.deepEqual(await tags(), ["first", "stable", "v2"]);
    });

    it("sha512 end to end: chunked upload, HEAD, GET, Range, mount, manifests and referrers by sha512 digest", async () => {
      if (dev.has("no-sha512")) return;
      const repo = randomRepo();
      const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", n: randomBytes(4).toString("hex") }));
      const layer = randomBytes(5000);
      // the config monolithically, the layer in two PATCHes then an empty PUT
      const cd = sha512(config);
      const put = await fetch(withQuery(await startUpload(b(), repo), `digest=${cd}`), { method: "PUT", body: config, headers: { "content-type": "application/octet-stream" } });
      assert.equal(put.status, 201, await put.text());
      if (dev.has("sha512-canonical-sha256")) {
        assert.equal(put.headers.get("docker-content-digest"), sha256(config), "peer deviation: the canonical digest is sha256");
        return;
      }
      assert.equal(put.headers.get("docker-content-digest"), cd);
      const ld = sha512(layer);
      let loc = await startUpload(b(), repo);
      for (const [start, end] of [[0, 2999], [3000, 4999]] as const) {
        const res = await fetch(loc, { method: "PATCH", body: layer.subarray(start, end + 1), headers: { "content-type": "application/octet-stream", "content-range": `${start}-${end}` } });
        assert.equal(res.status, 202, await res.text());
        loc = resolveLocation(b(), res);
      }
      const close = await fetch(withQuery(loc, `digest=${ld}`), { method: "PUT" });
      assert.equal(close.status, 201, await close.text());
      const head = await fetch(`${b()}/v2/${repo}/blobs/${ld}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "5000");
      assert.equal(head.headers.get("docker-content-digest"), ld);
      const get = await fetch(`${b()}/v2/${repo}/blobs/${ld}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), layer);
      const part = await fetch(`${b()}/v2/${repo}/blobs/${ld}`, { headers: { range: "bytes=4000-" } });
      assert.equal(part.status, 206);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), layer.subarray(4000));
      // a wrong sha512 is refused
      await expectError(await fetch(withQuery(await startUpload(b(), repo), `digest=${sha512(randomBytes(3))}`), { method: "PUT", body: layer, headers: { "content-type": "application/octet-stream" } }), 400, "DIGEST_INVALID");
      // mount into another repository
      const other = randomRepo();
      for (const d of [cd, ld]) {
        const mounted = await fetch(`${b()}/v2/${other}/blobs/uploads/?mount=${d}&from=${repo}`, { method: "POST" });
        assert.equal(mounted.status, 201, await mounted.text());
        assert.equal(mounted.headers.get("docker-content-digest"), d);
      }
      // a manifest of sha512 blobs, pushed by its sha512 digest (tagged with ?tag= where supported)
      const mediaType = "application/vnd.oci.image.manifest.v1+json";
      const bytes = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: ld, size: layer.length }],
      }));
      const md = sha512(bytes);
      for (const r of [repo, other]) {
        const pm = await fetch(`${b()}/v2/${r}/manifests/${md}${dev.has("no-tag-query") ? "" : "?tag=v512"}`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });
        assert.equal(pm.status, 201, await pm.text());
        assert.equal(pm.headers.get("docker-content-digest"), md);
      }
      const refs = dev.has("no-tag-query") ? [md] : [md, "v512"];
      for (const ref of refs) {
        const gm = await fetch(`${b()}/v2/${other}/manifests/${ref}`, { headers: { accept: mediaType } });
        assert.equal(gm.status, 200, ref);
        assert.equal(gm.headers.get("docker-content-digest"), md, ref);
        assert.deepEqual(Buffer.from(await gm.arrayBuffer()), bytes, ref);
      }
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/${sha512(randomBytes(8))}`, { headers: { accept: mediaType } }), 404, "MANIFEST_UNKNOWN");
      if (!dev.has("no-referrers")) {
        const sig = await pushImage(b(), repo, "sig512", { artifactType: "application/vnd.example.signature", subject: { mediaType, digest: md, size: bytes.length } });
        const list = await fetch(`${b()}/v2/${repo}/referrers/${md}`);
        assert.equal(list.status, 200);
        assert.deepEqual((await list.json() as { manifests: { digest: string }[] }).manifests.map((x) => x.digest), [sig.digest]);
      }
      const del = await fetch(`${b()}/v2/${repo}/manifests/${md}`, { method: "DELETE" });
      assert.equal(del.status, 202);
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/${md}`, { headers: { accept: mediaType } }), 404, "MANIFEST_UNKNOWN");
    });

    it("tag list: sorted, paginated with n/last and a Link header", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "a1");
      for (const tag of ["c3", "b2", "d4", "e5"]) {
        const res = await fetch(`${b()}/v2/${repo}/manifests/${tag}`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } });
        assert.equal(res.status, 201);
      }
      const all = await fetch(`${b()}/v2/${repo}/tags/list`);
      const listed = (await all.json() as { name: string; tags: string[] });
      assert.equal(listed.name, repo);
      const order = (t: string[]) => (dev.has("tags-unsorted") ? [...t].sort() : t);
      assert.deepEqual(order(listed.tags), ["a1", "b2", "c3", "d4", "e5"]);
      const pages: string[][] = [];
      let url: string | null = `${b()}/v2/${repo}/tags/list?n=2`;
      while (url) {
        const res = await fetch(url);
        assert.equal(res.status, 200);
        pages.push((await res.json() as { tags: string[] }).tags);
        const link = res.headers.get("link");
        if (link) assert.match(link, /^<[^>]+>; rel="?next"?$/);
        url = link ? new URL(/<([^>]+)>/.exec(link)![1]!, b()).toString() : null;
        assert.ok(pages.length <= 3, "pagination does not end");
      }
      if (dev.has("no-tag-pagination")) {
        assert.deepEqual(pages.map((p) => p.length), [5], "peer deviation: one page");
        return;
      }
      assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
      assert.deepEqual(order(pages.flat()), ["a1", "b2", "c3", "d4", "e5"]);
      if (!dev.has("tags-unsorted")) {
        assert.deepEqual(pages, [["a1", "b2"], ["c3", "d4"], ["e5"]]);
        const p3 = await fetch(`${b()}/v2/${repo}/tags/list?n=2&last=d4`);
        assert.deepEqual((await p3.json() as { tags: string[] }).tags, ["e5"]);
        assert.equal(p3.headers.get("link"), null);
      }
    });

    it("catalog: repositories paginated with n/last and a Link header, each once, in order", async () => {
      const ns = `cat${randomBytes(4).toString("hex")}`;
      const repos = [`${ns}/a`, `${ns}/b`, `${ns}/c`];
      for (const r of repos) await pushImage(b(), r, "t");
      const seen: string[] = [];
      let url: string | null = `${b()}/v2/_catalog?n=2`;
      for (let pages = 0; url; pages++) {
        assert.ok(pages < 500, "pagination does not end");
        const res: Response = await fetch(url);
        assert.equal(res.status, 200);
        const page = (await res.json() as { repositories: string[] }).repositories;
        assert.ok(page.length <= 2, `a page of n=2 holds ${page.length}`);
        seen.push(...page);
        const link = res.headers.get("link");
        if (link) assert.match(link, /^<[^>]+>; rel="?next"?$/);
        url = link ? new URL(/<([^>]+)>/.exec(link)![1]!, b()).toString() : null;
      }
      assert.deepEqual(seen.filter((r) => r.startsWith(`${ns}/`)), repos);
      assert.equal(new Set(seen).size, seen.length, "no repository on two pages");
      const next = await fetch(`${b()}/v2/_catalog?n=1&last=${encodeURIComponent(repos[0]!)}`);
      assert.deepEqual((await next.json() as { repositories: string[] }).repositories, [repos[1]]);
    });

    it("referrers: subject indexed, artifactType filter with OCI-Filters-Applied", async () => {
      const repo = randomRepo();
      const subject = await pushImage(b(), repo, "s");
      if (dev.has("no-referrers")) {
        const res = await fetch(`${b()}/v2/${repo}/referrers/${subject.digest}`);
        assert.equal(res.status, 404, "peer deviation: no referrers API");
        await res.arrayBuffer();
        return;
      }
      const subjectDesc = { mediaType: subject.mediaType, digest: subject.digest, size: subject.bytes.length };
      const sig = await pushImage(b(), repo, "sig", { artifactType: "application/vnd.example.signature", subject: subjectDesc });
      const sbom = await pushImage(b(), repo, "sbom", { artifactType: "application/vnd.example.sbom", subject: subjectDesc });
      const all = await fetch(`${b()}/v2/${repo}/referrers/${subject.digest}`);
      assert.equal(all.status, 200);
      assert.match(all.headers.get("content-type") ?? "", /application\/vnd\.oci\.image\.index\.v1\+json/);
      const idx = await all.json() as { manifests: { digest: string; artifactType: string }[] };
      assert.deepEqual(idx.manifests.map((m) => m.digest).sort(), [sig.digest, sbom.digest].sort());
      const filtered = await fetch(`${b()}/v2/${repo}/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
      assert.equal(filtered.headers.get("oci-filters-applied"), "artifactType");
      const fidx = await filtered.json() as { manifests: { digest: string }[] };
      assert.deepEqual(fidx.manifests.map((m) => m.digest), [sbom.digest]);
      const none = await fetch(`${b()}/v2/${repo}/referrers/${sha256("nothing")}`);
      assert.equal(none.status, 200);
      assert.deepEqual((await none.json() as { manifests: unknown[] }).manifests, []);
    });

    it("deletes: manifest by digest and blob → 202, then 404", async () => {
      const repo = randomRepo();
      const m = await pushImage(b(), repo, "gone");
      const del = await fetch(`${b()}/v2/${repo}/manifests/${m.digest}`, { method: "DELETE" });
      assert.equal(del.status, 202);
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/${m.digest}`, { headers: { accept: m.mediaType } }), 404, "MANIFEST_UNKNOWN");
      await expectError(await fetch(`${b()}/v2/${repo}/manifests/gone`, { headers: { accept: m.mediaType } }), 404, "MANIFEST_UNKNOWN");
      const d = await pushBlob(b(), repo, randomBytes(10));
      const bdel = await fetch(`${b()}/v2/${repo}/blobs/${d}`, { method: "DELETE" });
      assert.equal(bdel.status, 202);
      await expectError(await fetch(`${b()}/v2/${repo}/blobs/${d}`), 404, "BLOB_UNKNOWN");
    });

    it("invalid names, tags and digests → 400 with the OCI code", async () => {
      const repo = randomRepo();
      const d = sha256("x");
      for (const path of [`Upper/blobs/${d}`, "a/..%2F..%2Fetc/manifests/latest", `${"a".repeat(300)}/tags/list`]) {
        const res = await fetch(`${b()}/v2/${path}`);
        if (dev.has("invalid-ref-not-400")) {
          assert.ok(res.status === 404 || res.status === 500, `peer deviation: 404 or 500, got ${res.status}`);
          await res.arrayBuffer();
        } else {
          await expectError(res, 400, "NAME_INVALID");
        }
      }
      await expectError(await fetch(`${b()}/v2/${repo}/blobs/sha256:XYZ`), 400, "DIGEST_INVALID");
      if (!dev.has("no-monolithic-post")) {
        await expectError(await fetch(`${b()}/v2/${repo}/blobs/uploads/?digest=sha256:1234`, { method: "POST", body: "x", headers: { "content-type": "application/octet-stream" } }), 400, "DIGEST_INVALID");
      }
      const loc = await startUpload(b(), repo);
      await expectError(await fetch(withQuery(loc, "digest=sha256:1234"), { method: "PUT", body: "x", headers: { "content-type": "application/octet-stream" } }), 400, "DIGEST_INVALID");
      const m = await pushImage(b(), repo, "ok");
      const badTag = await fetch(`${b()}/v2/${repo}/manifests/-bad`, { method: "PUT", body: m.bytes, headers: { "content-type": m.mediaType } });
      if (dev.has("invalid-ref-not-400")) {
        assert.equal(badTag.status, 404, "peer deviation: plain 404");
        await badTag.arrayBuffer();
      } else {
        await expectError(badTag, 400, "TAG_INVALID");
      }
    });
  });
}

export interface ForeignLayerOptions {
  /** the registry accepts unpushed non-distributable layers whose urls start with this; undefined: it refuses them */
  allowedUrl?: string;
}

/**
 * Non-distributable layers (OCI `nondistributable` types, Docker foreign layers) carry `urls` and are
 * usually never pushed. With a policy that allows their urls (`--allow-foreign-layers`) a manifest
 * naming them is accepted, listed and served; without one, refused like any missing blob.
 */
export function foreignLayerConformance(label: string, getBase: () => string, options: ForeignLayerOptions = {}): void {
  const allowed = options.allowedUrl;
  describe(`non-distributable layers: ${label}`, () => {
    const b = () => getBase();
    const oci = "application/vnd.oci.image.manifest.v1+json";
    const docker = "application/vnd.docker.distribution.manifest.v2+json";
    const foreignUrl = `${allowed ?? "https://layers.example.com/"}blobs/${randomBytes(4).toString("hex")}`;

    /** A manifest of a pushed config and layer plus non-distributable layers that are never pushed. */
    const build = async (repo: string, mediaType: string, layers: Record<string, unknown>[]) => {
      const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "windows", n: randomBytes(4).toString("hex") }));
      const layer = randomBytes(300);
      const cd = await pushBlob(b(), repo, config);
      const ld = await pushBlob(b(), repo, layer);
      const dockerish = mediaType === docker;
      return Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType,
        config: { mediaType: dockerish ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json", digest: cd, size: config.length },
        layers: [{ mediaType: dockerish ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.oci.image.layer.v1.tar", digest: ld, size: layer.length }, ...layers],
      }, null, 2));
    };
    const foreign = (mediaType: string, extra: Record<string, unknown> = { urls: [foreignUrl] }) => {
      const bytes = randomBytes(64);
      return { mediaType, digest: sha256(bytes), size: 5_000_000, ...extra };
    };
    const put = (repo: string, ref: string, bytes: Buffer, mediaType: string) =>
      fetch(`${b()}/v2/${repo}/manifests/${ref}`, { method: "PUT", body: bytes, headers: { "content-type": mediaType } });

    it(allowed ? "OCI non-distributable layers with allowed urls: accepted, listed, served by tag and by digest" : "OCI non-distributable layers, never pushed: 400 MANIFEST_BLOB_UNKNOWN, nothing stored", async () => {
      const repo = randomRepo("foreign");
      const layers = [
        foreign("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
        foreign("application/vnd.oci.image.layer.nondistributable.v1.tar", { urls: [foreignUrl, `${foreignUrl}-mirror`] }),
      ];
      const bytes = await build(repo, oci, layers);
      const res = await put(repo, "win", bytes, oci);
      if (!allowed) {
        await expectError(res, 400, "MANIFEST_BLOB_UNKNOWN");
        await expectError(await fetch(`${b()}/v2/${repo}/manifests/win`, { headers: { accept: oci } }), 404, "MANIFEST_UNKNOWN");
        return;
      }
      assert.equal(res.status, 201, await res.text());
      assert.equal(res.headers.get("docker-content-digest"), sha256(bytes));
      const tags = await fetch(`${b()}/v2/${repo}/tags/list`);
      assert.deepEqual((await tags.json() as { tags: string[] }).tags, ["win"]);
      for (const ref of ["win", sha256(bytes)]) {
        const get = await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { headers: { accept: oci } });
        assert.equal(get.status, 200, ref);
        assert.equal(get.headers.get("content-type"), oci);
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes, ref);
        const head = await fetch(`${b()}/v2/${repo}/manifests/${ref}`, { method: "HEAD", headers: { accept: oci } });
        assert.equal(head.status, 200, ref);
        assert.equal(head.headers.get("docker-content-digest"), sha256(bytes));
      }
      // the layers themselves live at their urls, not here
      await expectError(await fetch(`${b()}/v2/${repo}/blobs/${layers[0]!.digest}`), 404, "BLOB_UNKNOWN");
    });

    it(allowed ? "a Docker foreign layer with an allowed url: accepted" : "a Docker foreign layer, never pushed: 400 MANIFEST_BLOB_UNKNOWN", async () => {
      const repo = randomRepo("foreign");
      const bytes = await build(repo, docker, [foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")]);
      const res = await put(repo, "win", bytes, docker);
      if (!allowed) return expectError(res, 400, "MANIFEST_BLOB_UNKNOWN");
      assert.equal(res.status, 201, await res.text());
      const get = await fetch(`${b()}/v2/${repo}/manifests/win`, { headers: { accept: docker } });
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes);
    });

    if (allowed) {
      it("still refused (400 MANIFEST_BLOB_UNKNOWN): urls outside the policy, no urls, a distributable type, a missing config", async () => {
        const repo = randomRepo("foreign");
        const nd = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
        for (const [why, layer] of [
          ["a url the policy does not allow", foreign(nd, { urls: ["https://elsewhere.example/blob"] })],
          ["one of two urls outside the policy", foreign(nd, { urls: [foreignUrl, "https://elsewhere.example/blob"] })],
          ["a url with a fragment", foreign(nd, { urls: [`${foreignUrl}#frag`] })],
          ["no urls", foreign(nd, { urls: [] })],
          ["no urls field", foreign(nd, {})],
          ["a distributable layer type", foreign("application/vnd.oci.image.layer.v1.tar+gzip")],
        ] as const) {
          const bytes = await build(repo, oci, [layer]);
          const res = await put(repo, "bad", bytes, oci);
          assert.equal(res.status, 400, why);
          await expectError(res, 400, "MANIFEST_BLOB_UNKNOWN");
        }
        const bytes = Buffer.from(JSON.stringify({
          schemaVersion: 2, mediaType: oci,
          config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(randomBytes(8)), size: 10 },
          layers: [foreign(nd)],
        }));
        await expectError(await put(repo, "noconfig", bytes, oci), 400, "MANIFEST_BLOB_UNKNOWN");
        await expectError(await fetch(`${b()}/v2/${repo}/manifests/bad`, { headers: { accept: oci } }), 404, "MANIFEST_UNKNOWN");
      });
    }
  });
}
