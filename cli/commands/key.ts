/**
 * `mf key` prints this client's public key in authorized_keys form (what a registry's access file lists),
 * generating an unencrypted OpenSSH ed25519 pair at the key path on first use (`~/.mf/id_ed25519`, 0600,
 * and `.pub`). `--key` / MF_KEY name another key, e.g. `~/.ollama/id_ed25519`.
 */
import { hostname, userInfo } from "node:os";
import { resolve } from "node:path";
import type { CommandModule } from "yargs";
import { ensurePrivateKey, fingerprint, publicKeyLine } from "../../registry/protocol/keys.js";
import { cliContext } from "../context.js";

interface Args {
  key?: string;
  fingerprint?: boolean;
}

export const keyCommand: CommandModule<object, Args> = {
  command: "key",
  describe: "show this client's public key (generated on first use)",
  builder: (y) =>
    y
      .option("key", { type: "string", describe: "private key file (default MF_KEY or ~/.mf/id_ed25519)" })
      .option("fingerprint", { type: "boolean", default: false, describe: "print the SHA256 fingerprint instead" }) as never,
  handler: (args) => {
    const path = resolve(args.key ?? cliContext().config.key);
    const { key, created } = ensurePrivateKey(path, `${userInfo().username}@${hostname()}`);
    if (created) process.stderr.write(`generated a new ed25519 key at ${path} (public key in ${path}.pub)\n`);
    process.stdout.write(`${args.fingerprint ? fingerprint(key.publicBlob) : publicKeyLine(key)}\n`);
  },
};
