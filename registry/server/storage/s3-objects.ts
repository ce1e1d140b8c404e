/**
 * The S3 calls the S3 driver makes, over one bucket: thin wrappers around @aws-sdk/client-s3 that turn
 * "not there" into null and keep the settings a real engine needs in one place (path-style addressing;
 * checksums only when required, since Ceph's radosgw answers a streamed upload with the SDK's default
 * trailing checksum by 411 MissingContentLength; see ../shared/recipes/ceph-s3.md).
 *
 * Every object the driver writes carries its kind and times as user metadata (`x-amz-meta-mf-*`), so
 * one HEAD tells what a key holds (ObjectInfo) without reading it.
 */
import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { StoreError } from "../../../core/errors.js";

export interface S3Connection {
  bucket: string;
  /** `http://127.0.0.1:7480`; absent: AWS's own endpoint for the region */
  endpoint?: string;
  /** default us-east-1 (any string for most S3-compatible engines) */
  region?: string;
  /** absent: the SDK's default chain (AWS_* variables, profiles, instance roles) */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** default true: path-style URLs (`endpoint/bucket/key`), what engines without wildcard DNS need */
  forcePathStyle?: boolean;
  /** the endpoint clients reach for pre-signed URLs when it differs from `endpoint` */
  publicEndpoint?: string;
  /** concurrent connections to the engine (default 64) */
  maxSockets?: number;
}

/** What a key holds, from one HEAD. */
export type ObjectKind = "plain" | "link" | "write";

export interface ObjectInfo {
  kind: ObjectKind;
  /** the logical size: the bytes of a plain object, of a link's target, of a write so far */
  size: number;
  modifiedMs: number;
  etag: string;
  /** a link's target key */
  target?: string;
  meta: Record<string, string>;
}

export const META_KIND = "mf-kind";
export const META_SIZE = "mf-size";
export const META_MTIME = "mf-mtime";
export const META_TARGET = "mf-target";

interface AwsError {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function status(e: unknown): number | undefined {
  return (e as AwsError)?.$metadata?.httpStatusCode;
}

export function isMissing(e: unknown): boolean {
  const name = (e as AwsError)?.name;
  return status(e) === 404 || name === "NotFound" || name === "NoSuchKey" || name === "NoSuchUpload";
}

export function isPreconditionFailed(e: unknown): boolean {
  return status(e) === 412 || (e as AwsError)?.name === "PreconditionFailed";
}

function makeClient(c: S3Connection, endpoint: string | undefined): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: c.maxSockets ?? 64 };
  const config: S3ClientConfig = {
    region: c.region ?? "us-east-1",
    forcePathStyle: c.forcePathStyle ?? true,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    requestHandler: { httpAgent: new Agent(agentOptions), httpsAgent: new HttpsAgent(agentOptions) },
    ...(endpoint ? { endpoint } : {}),
    ...(c.credentials ? { credentials: c.credentials } : {}),
  };
  return new S3Client(config);
}

export class S3Objects {
  readonly bucket: string;
  readonly client: S3Client;
  private readonly presigner: S3Client;

  constructor(c: S3Connection) {
    this.bucket = c.bucket;
    this.client = makeClient(c, c.endpoint);
    this.presigner = c.publicEndpoint && c.publicEndpoint !== c.endpoint ? makeClient(c, c.publicEndpoint) : this.client;
  }

  close(): void {
    this.client.destroy();
    if (this.presigner !== this.client) this.presigner.destroy();
  }

  static info(meta: Record<string, string> | undefined, length: number | undefined, lastModified: Date | undefined, etag: string | undefined): ObjectInfo {
    const m = meta ?? {};
    const kind: ObjectKind = m[META_KIND] === "link" || m[META_KIND] === "write" ? m[META_KIND] : "plain";
    const mtime = Number(m[META_MTIME]);
    return {
      kind,
      size: kind === "plain" ? (length ?? 0) : Number(m[META_SIZE] ?? 0),
      modifiedMs: Number.isFinite(mtime) && mtime > 0 ? mtime : (lastModified?.getTime() ?? 0),
      etag: etag ?? "",
      target: m[META_TARGET],
      meta: m,
    };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return S3Objects.info(r.Metadata, r.ContentLength, r.LastModified, r.ETag);
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  /** The object's bytes [start, end] (inclusive) as a stream; null when absent. */
  async get(key: string, span?: { start: number; end: number }, signal?: AbortSignal): Promise<{ body: Readable; info: ObjectInfo } | null> {
    try {
      const r = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(span ? { Range: `bytes=${span.start}-${span.end}` } : {}) }),
        { abortSignal: signal },
      );
      return { body: r.Body as Readable, info: S3Objects.info(r.Metadata, r.ContentLength, r.LastModified, r.ETag) };
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  /** A small object read whole (or its first `length` bytes); null when absent. */
  async getBuffer(key: string, length?: number): Promise<{ data: Buffer; info: ObjectInfo } | null> {
    if (length === 0) return { data: Buffer.alloc(0), info: S3Objects.info({}, 0, undefined, undefined) };
    const r = await this.get(key, length !== undefined ? { start: 0, end: length - 1 } : undefined);
    if (!r) return null;
    const chunks: Buffer[] = [];
    for await (const c of r.body) chunks.push(c as Buffer);
    return { data: Buffer.concat(chunks), info: r.info };
  }

  async put(key: string, body: Uint8Array, meta: Record<string, string>, options: { ifAbsent?: boolean } = {}): Promise<void> {
    await this.client.send(new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      Metadata: meta,
      ...(options.ifAbsent ? { IfNoneMatch: "*" } : {}),
    }));
  }

  /** Server-side copy; `meta` replaces the metadata (else it is copied). `ifMatch`: only if unchanged. */
  async copy(from: string, to: string, options: { meta?: Record<string, string>; ifMatch?: string } = {}): Promise<void> {
    await this.client.send(new CopyObjectCommand({
      Bucket: this.bucket,
      Key: to,
      CopySource: `${this.bucket}/${from.split("/").map(encodeURIComponent).join("/")}`,
      ...(options.meta ? { MetadataDirective: "REPLACE", Metadata: options.meta } : { MetadataDirective: "COPY" }),
      ...(options.ifMatch ? { CopySourceIfMatch: options.ifMatch } : {}),
    }));
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      if (batch.length === 0) continue;
      const r = await this.client.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }));
      const failed = (r.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
      if (failed.length) throw new StoreError("STORE_CORRUPT", `S3 delete failed for ${failed.length} keys: ${failed[0]!.Code} ${failed[0]!.Message ?? ""}`);
    }
  }

  /** One level under `prefix` (which ends with `/`): child names of objects and of deeper prefixes. */
  async listLevel(prefix: string): Promise<string[]> {
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: "/", ContinuationToken: token }));
      for (const p of r.CommonPrefixes ?? []) if (p.Prefix) names.add(p.Prefix.slice(prefix.length, -1));
      for (const o of r.Contents ?? []) if (o.Key) names.add(o.Key.slice(prefix.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    names.delete("");
    return [...names];
  }

  /** True when some key starts with `prefix`; with the modification time of the first one. */
  async anyUnder(prefix: string): Promise<{ modifiedMs: number } | null> {
    const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 }));
    const o = r.Contents?.[0];
    return o ? { modifiedMs: o.LastModified?.getTime() ?? 0 } : null;
  }

  /** Every key starting with `prefix`, at any depth. */
  async listAll(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key);
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async createMultipart(key: string): Promise<string> {
    const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
    if (!r.UploadId) throw new StoreError("STORE_CORRUPT", "S3 returned no multipart upload id");
    return r.UploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer, signal?: AbortSignal): Promise<string> {
    const r = await this.client.send(
      new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
      { abortSignal: signal },
    );
    if (!r.ETag) throw new StoreError("STORE_CORRUPT", `S3 returned no ETag for part ${partNumber}`);
    return r.ETag;
  }

  /**
   * Completes a multipart upload. The answer's ETag is not used: radosgw 16 sends it empty. A retry
   * after a completion whose answer was lost finds the upload gone and the object there: also done.
   */
  async completeMultipart(key: string, uploadId: string, parts: { n: number; etag: string }[], size: number): Promise<void> {
    try {
      await this.client.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
      }));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
    const done = await this.head(key);
    if (!done || done.size !== size) {
      throw new StoreError("STORE_CORRUPT", `S3 multipart upload of ${key} completed with ${done?.size ?? "no"} bytes, expected ${size}`);
    }
  }

  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  /** A pre-signed GET URL for `key`, valid `ttlS` seconds (ranges are served by S3 itself). */
  presignGet(key: string, ttlS: number): Promise<string> {
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlS });
  }
}
