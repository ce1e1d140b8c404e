/**
 * The client half of key-based auth: answers a registry's challenge. A Bearer challenge is taken to its
 * realm with, in order of preference, the API key or login stored for that host (basic auth), a
 * signature by the ssh key (compat.md §4), or nothing (an anonymous token). A realm may be on another
 * host (Docker Hub's is auth.docker.io) for basic-auth and anonymous token requests; a signature by the
 * ssh key goes only to the registry's own host and port, never elsewhere. A Basic challenge is answered with the stored API key. The scopes a registry asked
 * for are remembered per registry and asked for together, so one token covers a push's repository and
 * the repositories it mounts from.
 */
import { request, type Dispatcher } from "undici";
import { AuthError } from "../../core/errors.js";
import { signRequest, tokenUrl, type TokenResponse } from "../protocol/auth.js";
import type { SshKey } from "../protocol/keys.js";
import { readAll, readText, type Authenticate, type Challenge, type Credential } from "./http.js";

export interface KeyAuthOptions {
  /** the ssh key, or a function that loads it when first needed (undefined: no key) */
  key?: SshKey | (() => SshKey | undefined);
  /** the API key stored for a registry host (`host[:port]`), from `mf login`, or a username and password */
  apiKey?: (host: string) => string | BasicLogin | undefined;
  /** how messages name the API key (default "the API key stored by `mf login`") */
  apiKeyName?: string;
  dispatcher?: Dispatcher;
}

export interface BasicLogin {
  username: string;
  password: string;
}

function basic(secret: string | BasicLogin): string {
  const pair = typeof secret === "string" ? `mf:${secret}` : `${secret.username}:${secret.password}`;
  return `Basic ${Buffer.from(pair).toString("base64")}`;
}

export function keyAuthenticator(opts: KeyAuthOptions): Authenticate {
  const scopes = new Map<string, Set<string>>();
  let key: SshKey | undefined;
  let keyLoaded = false;
  const getKey = (): SshKey | undefined => {
    if (!keyLoaded) {
      key = typeof opts.key === "function" ? opts.key() : opts.key;
      keyLoaded = true;
    }
    return key;
  };

  return async (challenge: Challenge, signal?: AbortSignal): Promise<Credential> => {
    const host = new URL(challenge.origin).host;
    const apiKey = opts.apiKey?.(host);
    if (challenge.scheme.toLowerCase() === "basic") {
      if (!apiKey) throw new AuthError("UNAUTHORIZED", `${host} asks for a login: run \`mf login ${host}\` with an API key`);
      return { authorization: basic(apiKey) };
    }
    if (!challenge.realm) throw new AuthError("UNAUTHORIZED", `${host} sent a Bearer challenge without a realm`);
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new AuthError("UNAUTHORIZED", `${host} sent an invalid realm in its challenge`);
    }
    const k = apiKey ? undefined : getKey();
    if (realm.host !== host && k) {
      throw new AuthError("UNAUTHORIZED", `${host} names a token realm on another host (${realm.host}); mf only signs for the registry's own host`);
    }
    let asked = scopes.get(challenge.origin);
    if (!asked) scopes.set(challenge.origin, (asked = new Set()));
    for (const s of (challenge.scope ?? "").split(" ")) if (s) {
      asked.delete(s);
      asked.add(s);
    }
    while (asked.size > 32) asked.delete(asked.values().next().value!); // a long-lived client: the newest scopes

    const url = tokenUrl({ realm: realm.toString(), service: challenge.service, scopes: [...asked] });
    const headers: Record<string, string> = {};
    if (apiKey) headers.authorization = basic(apiKey);
    else if (k) headers.authorization = signRequest(k, "GET", url);
    const res = await request(url, { method: "GET", headers, signal, dispatcher: opts.dispatcher });
    if (res.statusCode !== 200) {
      let message = "";
      try {
        const body = JSON.parse(await readText(res.body)) as { errors?: { message?: string }[] };
        message = body.errors?.[0]?.message ?? "";
      } catch {
        /* no envelope */
      }
      const how = apiKey ? (opts.apiKeyName ?? "the API key stored by `mf login`") : k ? "the ssh key" : "no credentials (no key found; see `mf key`)";
      throw new AuthError("UNAUTHORIZED", `${host} refused a token for ${how}: ${message || `status ${res.statusCode}`}`);
    }
    const body = JSON.parse((await readAll(res.body, 1 << 20)).toString("utf8")) as Partial<TokenResponse>;
    const token = body.token ?? body.access_token;
    if (typeof token !== "string" || !token) throw new AuthError("UNAUTHORIZED", `${host}'s token endpoint answered without a token`);
    return { token, expiresInS: typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : undefined };
  };
}
