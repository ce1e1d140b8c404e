/**
 * Who may talk to the server. When it is bound to a loopback address only local `Host` names are served
 * (a DNS-rebinding page cannot reach it under its own name), and browsers get CORS only from Ollama's
 * allowed origins (localhost, 127.0.0.1, 0.0.0.0 on any port; app, file, tauri and editor webviews) plus
 * the configured extra ones (MF_ORIGINS, `*` wildcards allowed). A refusal is thrown as a 403, so that the
 * error handler of the API the path belongs to writes it in that API's shape (Ollama's, OpenAI's or
 * Anthropic's).
 */
import { hostname } from "node:os";
import { isIP } from "node:net";
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../core/errors.js";

const DEFAULT_ORIGINS = [
  "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
  "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
  "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
  "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
];

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`, "i");
}

export function originAllowed(origin: string, extra: readonly string[]): boolean {
  return [...DEFAULT_ORIGINS, ...extra].some((p) => p === "*" || wildcard(p).test(origin));
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

function isPrivateIp(ip: string): boolean {
  if (isIP(ip) === 4) return /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|0\.0\.0\.0$|169\.254\.)/.test(ip);
  const l = ip.toLowerCase();
  return l === "::1" || l === "::" || l.startsWith("fc") || l.startsWith("fd") || l.startsWith("fe80:");
}

/** Host names a loopback-bound server answers to. */
export function hostAllowed(hostHeader: string | undefined): boolean {
  if (!hostHeader) return true;
  let h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) h = h.slice(1, h.indexOf("]"));
  else if (h.split(":").length === 2) h = h.split(":")[0]!;
  if (isIP(h)) return isPrivateIp(h);
  return h === "localhost" || h === hostname().toLowerCase() || /\.(localhost|local|internal)$/.test(h);
}

export function installGuard(app: FastifyInstance, opts: { bindHost: string; origins: readonly string[] }): void {
  const guardHosts = isLoopbackHost(opts.bindHost.replace(/^\[|\]$/g, ""));
  app.addHook("onRequest", async (req, reply) => {
    if (guardHosts && !hostAllowed(req.headers.host)) {
      throw new RuntimeError("DENIED", "forbidden: host not allowed");
    }
    const origin = req.headers.origin;
    if (!origin) return;
    if (!originAllowed(origin, opts.origins)) throw new RuntimeError("DENIED", "forbidden: origin not allowed");
    reply.header("access-control-allow-origin", origin);
    reply.header("vary", "Origin");
    if (req.method === "OPTIONS") {
      reply.header("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
      reply.header(
        "access-control-allow-headers",
        req.headers["access-control-request-headers"] ?? "Authorization, Content-Type, User-Agent, Accept, X-Requested-With",
      );
      reply.header("access-control-max-age", "43200");
      return reply.code(204).send();
    }
  });
}
