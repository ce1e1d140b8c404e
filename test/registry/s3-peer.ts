/**
 * The S3 engine the S3 suites run against: named by MF_TEST_S3_ENDPOINT, MF_TEST_S3_BUCKET and the
 * standard AWS variables (`test/services/ceph.sh up` prints them; `.ci/run` exports them). Without
 * them the suites announce that they could not run (S3_MISSING), like the other peers' suites.
 * Every test works under its own random prefix of the bucket and removes it afterwards.
 */
import { randomBytes } from "node:crypto";
import { ListMultipartUploadsCommand, AbortMultipartUploadCommand, CopyObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { S3Driver, type S3DriverOptions } from "../../registry/server/storage/s3.js";
import { S3Objects, type S3Connection } from "../../registry/server/storage/s3-objects.js";

export interface S3Peer extends S3Connection {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/** The engine the variables name (the S3 suites read process.env; the benchmark passes what it started). */
export function s3PeerFrom(e: Record<string, string | undefined>): S3Peer | null {
  if (!e.MF_TEST_S3_ENDPOINT || !e.MF_TEST_S3_BUCKET || !e.AWS_ACCESS_KEY_ID || !e.AWS_SECRET_ACCESS_KEY) return null;
  return {
    endpoint: e.MF_TEST_S3_ENDPOINT,
    bucket: e.MF_TEST_S3_BUCKET,
    region: e.AWS_REGION ?? "us-east-1",
    credentials: { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY },
  };
}

export const S3_PEER = s3PeerFrom(process.env);

// The pinned SDK warns once per process that its 2027 releases will need node 22; tests need not say so.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export const S3_MISSING = S3_PEER
  ? undefined
  : "no S3 engine: MF_TEST_S3_ENDPOINT, MF_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not all set " +
    "(start Ceph with `npm run services` and export what it prints)";

/** A fresh prefix for one test's objects. */
export function s3Prefix(label: string): string {
  return `mf-test/${label}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

export function s3Driver(prefix: string, options: Partial<S3DriverOptions> = {}): S3Driver {
  return new S3Driver({ ...S3_PEER!, prefix, ...options });
}

/** Removes every object and open multipart upload under `prefix`. */
export async function removeS3Prefix(prefix: string, peer: S3Peer = S3_PEER!): Promise<void> {
  const objects = new S3Objects(peer);
  try {
    await objects.deleteMany(await objects.listAll(`${prefix}/`));
    const client = objects.client;
    for (;;) {
      const r = await client.send(new ListMultipartUploadsCommand({ Bucket: peer.bucket, Prefix: `${prefix}/` }));
      const uploads = r.Uploads ?? [];
      for (const u of uploads) await client.send(new AbortMultipartUploadCommand({ Bucket: peer.bucket, Key: u.Key!, UploadId: u.UploadId! }));
      if (!r.IsTruncated || uploads.length === 0) break;
    }
  } finally {
    objects.close();
  }
}

/** Open multipart uploads under `prefix` (what a crash or an abandoned upload would leave). */
export async function openMultipartUploads(prefix: string): Promise<number> {
  const client = new S3Client({ ...S3_PEER!, forcePathStyle: true });
  try {
    const r = await client.send(new ListMultipartUploadsCommand({ Bucket: S3_PEER!.bucket, Prefix: `${prefix}/` }));
    return (r.Uploads ?? []).length;
  } finally {
    client.destroy();
  }
}

/** Sets the driver's modification time of an object `ms` into the past (S3 has no utimes). */
export async function ageS3Object(prefix: string, path: string, ms: number): Promise<void> {
  const client = new S3Client({ ...S3_PEER!, forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED" });
  try {
    const Key = `${prefix}/${path}`;
    const head = await client.send(new HeadObjectCommand({ Bucket: S3_PEER!.bucket, Key }));
    await client.send(new CopyObjectCommand({
      Bucket: S3_PEER!.bucket, Key, CopySource: `${S3_PEER!.bucket}/${Key}`,
      MetadataDirective: "REPLACE", Metadata: { ...head.Metadata, "mf-mtime": String(Date.now() - ms) },
    }));
  } finally {
    client.destroy();
  }
}
