/**
 * `mf login HOST` stores an API key (from `mf registry key add`) for a registry host in
 * `~/.mf/config.json` (0600); pushes and pulls to that host then get their tokens with it. The key is
 * read from `--api-key`, or from stdin (so it stays out of shell history). `mf logout HOST` removes it.
 */
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { cliContext } from "../context.js";
import { hostKey, removeApiKey, saveApiKey } from "../credentials.js";

interface Args {
  host: string;
  "api-key"?: string;
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
      .option("api-key", { type: "string", describe: "the key (default: read from stdin)" }) as never,
  handler: async (args) => {
    const apikey = args["api-key"] ?? (await readStdin());
    if (!apikey || /\s/.test(apikey)) throw new MfError("BAD_REQUEST", "no API key given (pass --api-key or pipe it on stdin)");
    saveApiKey(cliContext().config.home, args.host, apikey);
    process.stderr.write(`stored an API key for ${hostKey(args.host)}\n`);
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
