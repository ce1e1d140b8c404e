/**
 * `mf login HOST` checks an API key (from `mf registry key add`) against the registry (a token request
 * with it, through an authenticated `GET /v2/`) and stores it for that host in `~/.mf/config.json`
 * (0600); pushes and pulls to that host then get their tokens with it. The key is read from `--api-key`,
 * or from stdin (so it stays out of shell history). `mf logout HOST` removes it.
 */
import type { CommandModule } from "yargs";
import { AuthError, isMfError, MfError } from "../../core/errors.js";
import { keyAuthenticator } from "../../registry/client/auth.js";
import { RegistryClient } from "../../registry/client/index.js";
import { cliContext } from "../context.js";
import { hostKey, removeApiKey, saveApiKey } from "../credentials.js";

interface Args {
  host: string;
  "api-key"?: string;
  insecure: boolean;
}

/**
 * Asks the registry whether it takes the key: true when it asked for credentials and accepted these,
 * false when it asks for none (nothing to check). Throws when it refuses them or cannot be reached.
 */
async function checkApiKey(host: string, apikey: string, insecure: boolean): Promise<boolean> {
  const explicit = /^(https?):\/\//i.exec(host.trim())?.[1]?.toLowerCase();
  const base = `${explicit ?? (insecure ? "http" : "https")}://${hostKey(host)}`;
  let asked = false;
  const authenticate = keyAuthenticator({ apiKey: () => apikey, apiKeyName: "this API key" });
  const client = new RegistryClient({
    authenticate: (challenge, signal) => {
      asked = true;
      return authenticate(challenge, signal);
    },
    retries: 2,
  });
  try {
    await client.ping(base);
  } catch (e) {
    if (isMfError(e) && (e.code === "UNAUTHORIZED" || e.code === "DENIED")) {
      throw new AuthError(e.code, `${e.message}; the key was not stored`, { cause: e });
    }
    if (isMfError(e)) throw new MfError(e.code, `cannot check the key with ${base}: ${e.message}; the key was not stored`, { cause: e });
    throw e;
  } finally {
    await client.close();
  }
  return asked;
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write("API key: ");
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (process.stdin.isTTY && c.includes(10)) break;
  }
  return Buffer.concat(chunks).toString("utf8").trim();
}

export const loginCommand: CommandModule<object, Args> = {
  command: "login <host>",
  describe: "store an API key for a registry host",
  builder: (y) =>
    y
      .positional("host", { type: "string", demandOption: true, describe: "registry host[:port]" })
      .option("api-key", { type: "string", describe: "the key (default: read from stdin)" })
      .option("insecure", { type: "boolean", default: false, describe: "the registry speaks plain HTTP" }) as never,
  handler: async (args) => {
    const apikey = args["api-key"] ?? (await readStdin());
    if (!apikey || /\s/.test(apikey)) throw new MfError("BAD_REQUEST", "no API key given (pass --api-key or pipe it on stdin)");
    const checked = await checkApiKey(args.host, apikey, args.insecure);
    saveApiKey(cliContext().config.home, args.host, apikey);
    const host = hostKey(args.host);
    process.stderr.write(checked ? `${host} accepted the API key; stored it\n` : `stored an API key for ${host} (it asks for no credentials, so the key could not be checked)\n`);
  },
};

export const logoutCommand: CommandModule<object, { host: string }> = {
  command: "logout <host>",
  describe: "remove the API key stored for a registry host",
  builder: (y) => y.positional("host", { type: "string", demandOption: true }) as never,
  handler: (args) => {
    const removed = removeApiKey(cliContext().config.home, args.host);
    process.stderr.write(removed ? `removed the API key for ${hostKey(args.host)}\n` : `no API key was stored for ${hostKey(args.host)}\n`);
  },
};
