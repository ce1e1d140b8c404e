/**
 * Where `mf registry serve` and `mf registry gc` keep their data: a directory (`--root`, or `--storage
 * DIR`) or an S3 bucket (`--storage s3://bucket/prefix`). S3 settings come from the flags or the config
 * file, else from the standard AWS variables (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_REGION /
 * AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY [+ AWS_SESSION_TOKEN]), else the AWS
 * SDK's own chain (profiles, instance roles).
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import type { Argv } from "yargs";
import { MfError } from "../core/errors.js";
import type { StorageDriver } from "../registry/server/storage/driver.js";
import { FsDriver } from "../registry/server/storage/fs.js";
import { parseSize } from "../registry/server/units.js";

export interface StorageArgs {
  root: string | string[];
  storage?: string;
  "s3-endpoint"?: string;
  "s3-public-endpoint"?: string;
  "s3-region"?: string;
  "s3-access-key-id"?: string;
  "s3-secret-access-key"?: string;
  "s3-part-size"?: string;
}

export function storageOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option("storage", { type: "string", describe: "s3://BUCKET/PREFIX to keep everything in S3 (replicas may share it), or a directory (= --root)" })
    .option("s3-endpoint", { type: "string", describe: "S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)" })
    .option("s3-public-endpoint", { type: "string", describe: "S3 endpoint clients reach for redirected blob downloads (default: --s3-endpoint)" })
    .option("s3-region", { type: "string", describe: "S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)" })
    .option("s3-access-key-id", { type: "string", describe: "S3 access key id (default: AWS_ACCESS_KEY_ID)" })
    .option("s3-secret-access-key", { type: "string", describe: "S3 secret key; prefer the config file or AWS_SECRET_ACCESS_KEY" })
    .option("s3-part-size", { type: "string", default: "16MiB", describe: "S3 multipart part size (at least 5MiB)" }) as unknown as Argv<T>;
}

/** A flag given twice arrives as an array: the last one wins. */
export function last(v: string | string[]): string {
  return Array.isArray(v) ? String(v[v.length - 1]) : v;
}

export interface OpenedStorage {
  driver: StorageDriver;
  /** what to print: the directory or the s3:// location (never credentials) */
  describe: string;
  /** the directory, for a filesystem root */
  root?: string;
  close(): void;
}

/** Opens the storage; the S3 driver (and the AWS SDK, ~30 MB resident) is loaded only for an s3:// location. */
export async function openStorage(args: StorageArgs, env: NodeJS.ProcessEnv = process.env): Promise<OpenedStorage> {
  const where = args.storage ?? last(args.root);
  if (!where.startsWith("s3://")) {
    const root = resolve(where);
    mkdirSync(root, { recursive: true });
    return { driver: new FsDriver({ root }), describe: root, root, close: () => {} };
  }
  // The SDK warns on every start, over several lines, that its releases after January 2027 need node 22;
  // that says nothing about this registry. Its documented switch, set before the first client exists
  // (unless the user set it).
  if (!env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
  const { S3Driver, parseS3Url } = await import("../registry/server/storage/s3.js");
  const { bucket, prefix } = parseS3Url(where);
  const accessKeyId = args["s3-access-key-id"] ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = args["s3-secret-access-key"] ?? env.AWS_SECRET_ACCESS_KEY;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new MfError("BAD_REQUEST", "S3 credentials need both an access key id and a secret key");
  }
  const partSize = parseSize(args["s3-part-size"] ?? "16MiB");
  if (partSize < 5 << 20) throw new MfError("BAD_REQUEST", "--s3-part-size must be at least 5MiB (S3's smallest part)");
  const driver = new S3Driver({
    bucket,
    prefix,
    endpoint: args["s3-endpoint"] ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL,
    publicEndpoint: args["s3-public-endpoint"],
    region: args["s3-region"] ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? "us-east-1",
    credentials: accessKeyId && secretAccessKey
      ? { accessKeyId, secretAccessKey, ...(env.AWS_SESSION_TOKEN && !args["s3-access-key-id"] ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
      : undefined,
    partSize,
  });
  return { driver, describe: `s3://${bucket}${prefix ? `/${prefix}` : ""}`, close: () => driver.close() };
}
