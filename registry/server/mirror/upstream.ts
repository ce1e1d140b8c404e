/**
 * One upstream registry, reached through mf's own client (registry/client: retries, redirects followed
 * by hand with Authorization kept to the upstream's own origin, 401 challenges answered): manifests read
 * whole and verified, blobs opened as a stream. The only place the server uses the client.
 */
import { digestOf } from "../../../core/digest.js";
import { MfError, RegistryError } from "../../../core/errors.js";
import { MANIFEST_ACCEPT } from "../../../core/mediatypes.js";
import { header, httpStatusOf, readAll, RegistryHttp, type Authenticate, type HttpResponse } from "../../../registry/client/http.js";
import { keyAuthenticator } from "../../../registry/client/auth.js";
import { parsePrivateKey } from "../../protocol/keys.js";
import type { UpstreamCredentials } from "./config.js";

export interface UpstreamOptions {
  base: string;
  credentials?: UpstreamCredentials;
  /** retries of a failed request (default 2: an unreachable upstream must not hold a pull for long) */
  retries?: number;
  userAgent?: string;
}

export interface UpstreamManifest {
  bytes: Buffer;
  digest: string;
  contentType?: string;
}

export class Upstream {
  readonly base: string;
  private readonly http: RegistryHttp;

  constructor(opts: UpstreamOptions) {
    this.base = opts.base;
    this.http = new RegistryHttp({
      authenticate: authenticator(opts.base, opts.credentials),
      retries: opts.retries ?? 2,
      baseDelayMs: 100,
      maxDelayMs: 1000,
      userAgent: opts.userAgent ?? "mf-registry-mirror",
    });
  }

  /** The manifest `reference` of upstream repository `repo`, verified against its digest. */
  async manifest(repo: string, reference: string, maxBytes: number): Promise<UpstreamManifest> {
    const res = await this.send("GET", `/v2/${repo}/manifests/${reference}`, { accept: MANIFEST_ACCEPT }, "MANIFEST_UNKNOWN");
    const bytes = await readAll(res.body, maxBytes);
    const algorithm = reference.startsWith("sha512:") ? "sha512" : "sha256";
    const digest = digestOf(bytes, algorithm);
    const claimed = header(res, "docker-content-digest");
    if ((reference.includes(":") && reference !== digest) || (claimed && claimed.startsWith(`${algorithm}:`) && claimed !== digest)) {
      throw new RegistryError("UNKNOWN", `upstream ${this.base} sent a manifest for ${repo}:${reference} that does not match its digest (${reference.includes(":") ? reference : claimed}); nothing was stored`);
    }
    return { bytes, digest, contentType: header(res, "content-type")?.split(";")[0]?.trim() };
  }

  /** The blob as a stream (redirects followed), with the size upstream declares. */
  async blob(repo: string, digest: string, signal?: AbortSignal): Promise<{ size: number; body: HttpResponse["body"] }> {
    const res = await this.send("GET", `/v2/${repo}/blobs/${digest}`, { "accept-encoding": "identity" }, "BLOB_UNKNOWN", signal);
    const size = Number(header(res, "content-length"));
    if (!Number.isSafeInteger(size) || size < 0) {
      res.body.destroy();
      throw new RegistryError("UNKNOWN", `upstream ${this.base} sent blob ${digest} without a Content-Length`);
    }
    return { size, body: res.body };
  }

  /** True when upstream serves `digest` to `repo` (a HEAD). */
  async hasBlob(repo: string, digest: string): Promise<boolean> {
    try {
      const res = await this.send("HEAD", `/v2/${repo}/blobs/${digest}`, {}, "BLOB_UNKNOWN");
      res.body.resume();
      return true;
    } catch (e) {
      if (e instanceof MfError && e.code === "BLOB_UNKNOWN") return false;
      throw e;
    }
  }

  close(): Promise<void> {
    return this.http.close();
  }

  /**
   * A request to upstream. Its 404 becomes `missing` (the client gets the registry's own 404 code); an
   * upstream that cannot be reached, or refuses this registry's credentials, is the upstream's failure:
   * 503, not the client's.
   */
  private async send(method: string, path: string, headers: Record<string, string>, missing: "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN", signal?: AbortSignal): Promise<HttpResponse> {
    try {
      return await this.http.send({ method, url: `${this.base}${path}`, headers, signal });
    } catch (e) {
      const status = httpStatusOf(e);
      if (status === 404) throw new RegistryError(missing, `not found upstream at ${this.base}: ${(e as Error).message}`, { cause: e });
      if (e instanceof MfError && e.code === "NAME_UNKNOWN") throw new RegistryError(missing, `not found upstream at ${this.base}: ${e.message}`, { cause: e });
      if (e instanceof MfError && (e.code === "MANIFEST_UNKNOWN" || e.code === "BLOB_UNKNOWN")) throw new RegistryError(missing, e.message, { cause: e });
      if ((e as { name?: string }).name === "AbortError") throw e;
      throw new UpstreamUnavailable(`upstream ${this.base} failed: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** The upstream could not answer (down, 5xx, refused our credentials): a cached copy may stand in. */
export class UpstreamUnavailable extends RegistryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SERVICE_UNAVAILABLE", message, options);
  }
}

/** Answers upstream challenges with the configured credentials (none: anonymous tokens). */
function authenticator(base: string, c: UpstreamCredentials | undefined): Authenticate {
  const host = new URL(base).host;
  const login = c?.username !== undefined && c.password !== undefined ? { username: c.username, password: c.password } : undefined;
  const key = c?.sshKey ? parsePrivateKey(c.sshKey, `the ssh key of the mirror of ${base}`) : undefined;
  const keyed = keyAuthenticator({
    key,
    apiKey: (h) => (h === host ? login : undefined),
    apiKeyName: `the login configured for ${base}`,
  });
  return async (challenge, signal) => {
    if (c?.token) return { authorization: `Bearer ${c.token}` };
    return keyed(challenge, signal);
  };
}
