/**
 * Starting `mf registry serve --storage s3://…` (issue 15, item 5): a `--secret-file` that does not exist
 * stops the start with a message that says how to make one (each replica would otherwise make its own
 * secret and refuse the others' upload locations), and the AWS SDK's Node-version warning never shows.
 * The refusal needs no S3 engine (nothing is sent before it); serving does, on Ceph.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pushBlob } from "./oci-client.js";
import { spawnMfRegistry, tempDir } from "./peers.js";
import { removeS3Prefix, s3Prefix, S3_MISSING, S3_PEER } from "./s3-peer.js";

const SDK_WARNING = /NodeVersionSupportWarning|AWS SDK for JavaScript \(v3\)/;

describe("mf registry serve on S3: the secret file and the start", () => {
  let dir: string;
  /**
   * The child's environment: without the variable that silences the SDK (s3-peer.ts sets it for this
   * process), and, since the SDK warns only on Node < 22, with `process.version` read as 20 (what the
   * SDK checks; the warning is the SDK's own), so that the check means something on any Node.
   */
  let sdkDefault: Record<string, string>;
  const prefixes: string[] = [];
  before(async () => {
    dir = await tempDir("mf-serve-s3-");
    const node20 = join(dir, "node20.cjs");
    await writeFile(node20, 'Object.defineProperty(process, "version", { value: "v20.20.2" });\n');
    sdkDefault = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined, NODE_OPTIONS: `--require ${node20}` } as unknown as Record<string, string>;
  });
  after(async () => {
    for (const p of prefixes) await removeS3Prefix(p);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a --secret-file that does not exist stops the start, saying how to make one; none is made", async () => {
    const missing = join(dir, "registry.secret");
    const started = await spawnMfRegistry(join(dir, "unused-root"), [
      "--storage", "s3://mf-test/never-written", "--s3-endpoint", "http://127.0.0.1:9", "--secret-file", missing,
    ], 30_000, { env: { ...sdkDefault, AWS_ACCESS_KEY_ID: "unused", AWS_SECRET_ACCESS_KEY: "unused" } }).then((r) => r, (e: Error) => e);
    if (!(started instanceof Error)) {
      started.child.kill("SIGKILL");
      await started.exited;
    }
    assert.ok(started instanceof Error, "the registry started on S3 with a secret file that does not exist");
    assert.match(started.message, new RegExp(`mf: --secret-file ${missing} does not exist\\. Replicas of one registry must share one secret`));
    assert.match(started.message, new RegExp(`openssl rand -hex 32 > ${missing}`));
    assert.doesNotMatch(started.message, SDK_WARNING);
    assert.equal(existsSync(missing), false, "no secret of its own was made");
  });

  it("a replica with an existing secret file serves, and the SDK's Node-version warning is not printed", { skip: S3_MISSING }, async () => {
    const secretFile = join(dir, "shared.secret");
    await writeFile(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    const prefix = s3Prefix("serve-start");
    prefixes.push(prefix);
    const r = await spawnMfRegistry(join(dir, "unused-root"), [
      "--storage", `s3://${S3_PEER!.bucket}/${prefix}`, "--s3-endpoint", S3_PEER!.endpoint, "--s3-region", S3_PEER!.region, "--secret-file", secretFile,
    ], 30_000, { env: { ...sdkDefault, AWS_ACCESS_KEY_ID: S3_PEER!.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_PEER!.credentials.secretAccessKey } });
    try {
      const d = await pushBlob(r.base, "start/check", Buffer.from("on s3"));
      const get = await fetch(`${r.base}/v2/start/check/blobs/${d}`);
      assert.equal(await get.text(), "on s3");
    } finally {
      r.child.kill("SIGTERM");
      await r.exited;
    }
    assert.match(r.output(), /mf registry listening on http:\/\/127\.0\.0\.1:\d+ \(storage s3:\/\//);
    assert.doesNotMatch(r.output(), SDK_WARNING);
  });
});
