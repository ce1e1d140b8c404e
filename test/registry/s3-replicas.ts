/**
 * `mf registry serve --storage s3://…` replicas for the S3 suites: real processes of the built binary
 * (dist/cli/main.js) on 127.0.0.1:0, sharing one bucket prefix and one secret file, each stopped (or
 * SIGKILLed by the test) and the prefix removed afterwards.
 */
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawnMfRegistry, tempDir, type SpawnedRegistry } from "./peers.js";
import { removeS3Prefix, s3Prefix, S3_PEER, type S3Peer } from "./s3-peer.js";

export const DIST_CLI = "dist/cli/main.js";
export const QUIET_SDK = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };

export interface Replica extends SpawnedRegistry {
  host: string;
  stop(): Promise<void>;
}

export interface ReplicaSet {
  dir: string;
  prefix: string;
  storage: string;
  secretFile: string;
  /** a replica with `extra` flags and `env` over the AWS variables (e.g. MF_FAULT) */
  start(extra?: string[], env?: Record<string, string>): Promise<Replica>;
  close(): Promise<void>;
}

export async function replicaSet(label: string, peer: S3Peer = S3_PEER!): Promise<ReplicaSet> {
  const dir = await tempDir(`mf-s3-${label}-`);
  const prefix = s3Prefix(label);
  const secretFile = join(dir, "secret.key");
  await writeFile(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
  const storage = `s3://${peer.bucket}/${prefix}`;
  const started: Replica[] = [];
  return {
    dir, prefix, storage, secretFile,
    async start(extra = [], env = {}) {
      const r = await spawnMfRegistry(join(dir, "unused-root"), [
        "--storage", storage, "--s3-endpoint", peer.endpoint, "--s3-region", peer.region, "--secret-file", secretFile, ...extra,
      ], 30_000, { entry: DIST_CLI, env: { ...QUIET_SDK, AWS_ACCESS_KEY_ID: peer.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: peer.credentials.secretAccessKey, ...env } });
      const replica: Replica = {
        ...r,
        host: new URL(r.base).host,
        async stop() {
          if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGTERM");
          await r.exited;
        },
      };
      started.push(replica);
      return replica;
    },
    async close() {
      for (const r of started) await r.stop();
      await removeS3Prefix(prefix, peer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
