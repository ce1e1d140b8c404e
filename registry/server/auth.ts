/**
 * The authorisation hook the registry calls before every /v2/ operation. A later issue implements keys
 * and tokens behind this interface; the default allows everything.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";

export type RegistryAction = "pull" | "push" | "delete";

export interface AuthorizeRequest {
  /** the repository the request touches; null for `GET /v2/` and `_catalog` */
  repository: string | null;
  actions: RegistryAction[];
}

export interface AuthHook {
  /**
   * Resolves when the request may proceed, with the subject it was allowed for when the hook knows one
   * (`anonymous`, `key:SHA256:…`, `apikey:<name>`: what pushes record and the audit log names); throws an MfError with code UNAUTHORIZED (no or bad
   * credentials) or DENIED (credentials without that access) otherwise.
   */
  authorize(request: FastifyRequest, access: AuthorizeRequest): Promise<string | void> | string | void;
  /** The `WWW-Authenticate` value sent with a 401, e.g. `Bearer realm="…",service="…",scope="…"`. */
  challenge?(request: FastifyRequest, access: AuthorizeRequest): string | undefined;
  /** Adds the hook's own routes (the token endpoint) to the registry app. */
  register?(app: FastifyInstance): void;
}

export const allowAll: AuthHook = {
  authorize() {},
};

const subjects = new WeakMap<FastifyRequest, string>();

/** Records who a request was authorised as (called by the registry after the hook allows it). */
export function setRequestSubject(request: FastifyRequest, subject: string): void {
  subjects.set(request, subject);
}

/** Who the auth hook allowed this request as; undefined without access control (allowAll) or before authorisation. */
export function requestSubject(request: FastifyRequest): string | undefined {
  return subjects.get(request);
}

/** A refusal of presented credentials, as the auth hook reports it: who, what, where, why (never a secret). */
export interface Refusal {
  /** `key:SHA256:…` (with the key's comment when known), `apikey:<id>`, `anonymous`, or what was presented */
  who: string;
  /** the actions asked for (`pull`, `push`, `delete`, `catalog`), or `token` at the token endpoint */
  action: string;
  /** the repository, or null (catalog, token endpoint) */
  repository: string | null;
  /** why, in words */
  reason: string;
}

const refusals = new WeakMap<FastifyRequest, Refusal>();

/** Records that the auth hook refused this request's credentials (the audit log's denial lines read it). */
export function setRequestRefusal(request: FastifyRequest, refusal: Refusal): void {
  refusals.set(request, refusal);
}

/** The refusal the auth hook recorded for this request, if any. */
export function requestRefusal(request: FastifyRequest): Refusal | undefined {
  return refusals.get(request);
}
