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
   * Resolves when the request may proceed; throws an MfError with code UNAUTHORIZED (no or bad
   * credentials) or DENIED (credentials without that access) otherwise.
   */
  authorize(request: FastifyRequest, access: AuthorizeRequest): Promise<void> | void;
  /** The `WWW-Authenticate` value sent with a 401, e.g. `Bearer realm="…",service="…",scope="…"`. */
  challenge?(request: FastifyRequest, access: AuthorizeRequest): string | undefined;
  /** Adds the hook's own routes (the token endpoint) to the registry app. */
  register?(app: FastifyInstance): void;
}

export const allowAll: AuthHook = {
  authorize() {},
};
