/**
 * `mf key` prints this client's public key in authorized_keys form (what a registry's access file lists).
 * At the default path (`~/.mf/id_ed25519`) the key is generated on first use: an unencrypted OpenSSH
 * ed25519 pair (0600, and `.pub`). A key anywhere else is created only when asked, with `--new`, so a
 * mistyped `--key` / MF_KEY path is an error instead of a new key nobody meant. `--key` / MF_KEY name
 * another key, e.g. `~/.ollama/id_ed25519`.
 */
import { existsSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { ensurePrivateKey, fingerprint, publicKeyLine } from "../../registry/protocol/keys.js";
import { keyPathOf, missingKeyError } from "../credentials.js";

interface Args {
  key?: string;
  new?: boolean;
  fingerprint?: boolean;
}

export const keyCommand: CommandModule<object, Args> = {
  command: "key",
  describe: "show this client's public key (at the default path, generated on first use)",
  builder: (y) =>
    y
      .option("key", { type: "string", describe: "private key file (default MF_KEY or ~/.mf/id_ed25519)" })
      .option("new", { type: "boolean", default: false, describe: "create a new key at the key path (never replaces one)" })
      .option("fingerprint", { type: "boolean", default: false, describe: "print the SHA256 fingerprint instead" }) as never,
  handler: (args) => {
    const k = keyPathOf(args.key);
    const exists = existsSync(k.path);
    if (args.new && exists) throw new MfError("BAD_REQUEST", `a key already exists at ${k.path}: \`mf key --new\` never replaces one`);
    if (!args.new && !exists && k.namedBy) throw missingKeyError(k);
    const { key, created } = ensurePrivateKey(k.path, `${userInfo().username}@${hostname()}`);
    if (created) process.stderr.write(`generated a new ed25519 key at ${k.path} (public key in ${k.path}.pub)\n`);
    process.stdout.write(`${args.fingerprint ? fingerprint(key.publicBlob) : publicKeyLine(key)}\n`);
  },
};
