/**
 * `mf sign NAME [--key FILE]`: signs NAME (the manifest its tag points at in the registry; or, when the
 * registry has no such tag, the local image: put by digest, signed, then tagged) with an ed25519 SSH key,
 * and pushes the signature as an OCI referrer of the manifest (docs/signatures.md).
 */
import type { CommandModule } from "yargs";
import { displayRef, parseRef } from "../../core/reference.js";
import { cliContext } from "../context.js";
import { signingKey } from "../credentials.js";
import { withTransfer } from "../transfer.js";

interface Args {
  name: string;
  insecure?: boolean;
  key?: string;
  quiet?: boolean;
}

export const signCommand: CommandModule<object, Args> = {
  command: "sign <name>",
  describe: "sign a model in a registry with an ssh key (an sshsig referrer of its manifest)",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "host/namespace/model[:tag]" })
      .option("insecure", { type: "boolean", default: false, describe: "use plain HTTP" })
      .option("key", { type: "string", describe: "ed25519 private key that signs (and authenticates; default MF_KEY or ~/.mf/id_ed25519)" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "print only the signature manifest's digest" }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const ref = parseRef(args.name);
    const key = signingKey(args.key);
    const r = await withTransfer(`mf sign ${args.insecure ? "--insecure " : ""}${args.name}`, ({ client, signal }) =>
      client.sign(store, ref, key.key, { insecure: args.insecure, signal }), { quiet: true, key: args.key });
    if (args.quiet) {
      process.stdout.write(`${r.signature.digest}\n`);
      return;
    }
    const how = r.source === "local" ? "the local image, pushed by digest, signed, then tagged" : "as the registry has it";
    const fallback = r.signature.fallbackTag ? ` (the registry has no referrers API: listed under tag ${r.digest.replace(":", "-")})` : "";
    process.stderr.write(`signed ${displayRef(ref)} (${r.digest}), ${how}, with ${r.signature.key} (${key.path}): signature ${r.signature.digest}${fallback}\n`);
  },
};
