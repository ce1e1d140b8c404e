/**
 * Errors are data: one base class, one table. Every code maps to an HTTP status and, where the
 * registry speaks it, an OCI error code. Servers turn an MfError into their wire envelope in exactly one
 * handler; call sites never choose a status.
 */

export interface ErrorSpec {
  /** HTTP status used by every server that answers with this error. */
  status: number;
  /** OCI distribution error code, for the registry envelope. */
  oci: string;
}

/** The error-code table. Registry codes are the OCI ones; the others are mf's own. */
export const ERROR_TABLE = {
  // OCI distribution (registry.md)
  BLOB_UNKNOWN: { status: 404, oci: "BLOB_UNKNOWN" },
  BLOB_UPLOAD_INVALID: { status: 400, oci: "BLOB_UPLOAD_INVALID" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, oci: "BLOB_UPLOAD_UNKNOWN" },
  DIGEST_INVALID: { status: 400, oci: "DIGEST_INVALID" },
  MANIFEST_BLOB_UNKNOWN: { status: 400, oci: "MANIFEST_BLOB_UNKNOWN" },
  MANIFEST_INVALID: { status: 400, oci: "MANIFEST_INVALID" },
  MANIFEST_UNKNOWN: { status: 404, oci: "MANIFEST_UNKNOWN" },
  MANIFEST_TOO_LARGE: { status: 413, oci: "SIZE_INVALID" },
  NAME_INVALID: { status: 400, oci: "NAME_INVALID" },
  NAME_UNKNOWN: { status: 404, oci: "NAME_UNKNOWN" },
  TAG_INVALID: { status: 400, oci: "TAG_INVALID" },
  SIZE_INVALID: { status: 400, oci: "SIZE_INVALID" },
  UNAUTHORIZED: { status: 401, oci: "UNAUTHORIZED" },
  DENIED: { status: 403, oci: "DENIED" },
  UNSUPPORTED: { status: 405, oci: "UNSUPPORTED" },
  RANGE_INVALID: { status: 416, oci: "RANGE_INVALID" },
  TOOMANYREQUESTS: { status: 429, oci: "TOOMANYREQUESTS" },
  UNKNOWN: { status: 500, oci: "UNKNOWN" },
  // mf's own
  BAD_REQUEST: { status: 400, oci: "UNSUPPORTED" },
  MODELFILE_INVALID: { status: 400, oci: "UNSUPPORTED" },
  TEMPLATE_INVALID: { status: 400, oci: "UNSUPPORTED" },
  BUILD_FAILED: { status: 400, oci: "UNSUPPORTED" },
  GGUF_INVALID: { status: 400, oci: "UNSUPPORTED" },
  FILE_NOT_FOUND: { status: 400, oci: "UNSUPPORTED" },
  MODEL_NOT_FOUND: { status: 404, oci: "NAME_UNKNOWN" },
  STORE_CORRUPT: { status: 500, oci: "UNKNOWN" },
  NO_SPACE: { status: 507, oci: "UNKNOWN" },
  SERVICE_UNAVAILABLE: { status: 503, oci: "TOOMANYREQUESTS" },
  MODEL_LOAD_FAILED: { status: 500, oci: "UNKNOWN" },
  INTERNAL: { status: 500, oci: "UNKNOWN" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface MfErrorOptions {
  cause?: unknown;
  detail?: unknown;
}

/** The one base class. `code` keys into ERROR_TABLE. */
export class MfError extends Error {
  readonly code: ErrorCode;
  readonly detail: unknown;

  constructor(code: ErrorCode, message: string, options: MfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.detail = options.detail;
  }

  get status(): number {
    return ERROR_TABLE[this.code].status;
  }

  get ociCode(): string {
    return ERROR_TABLE[this.code].oci;
  }
}

/** A problem in user-written text (Modelfile, template), with a position. */
export class SyntaxError_ extends MfError {}
/** `mf build` and `/api/create` failures. */
export class BuildError extends MfError {}
/** Local store and registry storage failures. */
export class StoreError extends MfError {}
/** Registry protocol failures, server or client side. */
export class RegistryError extends MfError {}
/** Authentication and authorisation failures. */
export class AuthError extends MfError {}
/** Inference server failures. */
export class RuntimeError extends MfError {}

export function isMfError(e: unknown): e is MfError {
  return e instanceof MfError;
}

/** Turns any thrown value into an MfError (unknown errors become INTERNAL; ENOSPC becomes NO_SPACE). */
export function toMfError(e: unknown): MfError {
  if (e instanceof MfError) return e;
  const err = e as NodeJS.ErrnoException | undefined;
  if (err && err.code === "ENOSPC") return new StoreError("NO_SPACE", "no space left on device", { cause: e });
  const message = err && typeof err.message === "string" ? err.message : String(e);
  return new MfError("INTERNAL", message, { cause: e });
}

/** The registry's OCI error envelope. */
export function ociEnvelope(e: MfError): { errors: { code: string; message: string; detail: unknown }[] } {
  return { errors: [{ code: e.ociCode, message: e.message, detail: e.detail ?? null }] };
}

/** The Ollama API's error envelope. */
export function apiEnvelope(e: MfError): { error: string } {
  return { error: e.message };
}

/** Reverse of ociEnvelope for clients: the first error of an envelope as an MfError. */
export function fromOciEnvelope(status: number, body: unknown): MfError {
  const errs = (body as { errors?: { code?: string; message?: string; detail?: unknown }[] } | null)?.errors;
  const first = Array.isArray(errs) ? errs[0] : undefined;
  const oci = first?.code ?? "UNKNOWN";
  const code = (Object.keys(ERROR_TABLE) as ErrorCode[]).find(
    (k) => ERROR_TABLE[k].oci === oci && ERROR_TABLE[k].status === status,
  ) ?? (Object.keys(ERROR_TABLE) as ErrorCode[]).find((k) => k === oci) ?? "UNKNOWN";
  return new RegistryError(code, first?.message ?? `registry answered ${status}`, { detail: first?.detail });
}
