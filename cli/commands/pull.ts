/** `mf pull NAME [--insecure]`: fetches a model from the registry its name points at (resumable). */
import type { CommandModule } from "yargs";
import { displayRef, parseRef } from "../../core/reference.js";
import { cliContext } from "../context.js";
import { withTransfer } from "../transfer.js";
import { describeSignature, pullPolicy } from "../verify.js";

interface Args {
  name: string;
  insecure?: boolean;
  quiet?: boolean;
  key?: string;
  verify?: boolean;
  "allowed-signers"?: string;
}

export const pullCommand: CommandModule<object, Args> = {
  command: "pull <name>",
  describe: "pull a model from a registry",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "[host/][namespace/]model[:tag]" })
      .option("insecure", { type: "boolean", default: false, describe: "use plain HTTP" })
      .option("key", { type: "string", describe: "ssh private key for registries with keys (default MF_KEY or ~/.mf/id_ed25519)" })
      .option("verify", { type: "boolean", default: false, describe: "refuse the image unless signed by a key in allowed_signers (--allowed-signers, or the config's verify rule)" })
      .option("allowed-signers", { type: "string", describe: "OpenSSH allowed_signers file of the keys trusted to sign (implies --verify)" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress output" }) as never,
  handler: async (args) => {
    const { store, config } = cliContext();
    const ref = parseRef(args.name);
    const verify = pullPolicy(config.home, ref, { verify: args.verify, allowedSigners: args["allowed-signers"] });
    await withTransfer(`mf pull ${args.insecure ? "--insecure " : ""}${args.name}`, ({ client, signal, onProgress }) =>
      client.pull(store, ref, { insecure: args.insecure, signal, onProgress, verify }), { quiet: args.quiet, key: args.key })
      .then((r) => {
        if (r.converted && !args.quiet) {
          process.stderr.write(`converted the ${r.converted.format} image ${r.converted.sourceDigest} to an Ollama image:\n`);
          for (const line of r.converted.summary) process.stderr.write(`  ${line}\n`);
        }
        if (args.quiet) process.stdout.write(`${r.digest}\n`);
        else {
          for (const s of r.signatures ?? []) process.stderr.write(`verified: ${describeSignature(s)}\n`);
          process.stderr.write(`pulled ${displayRef(r.ref)} (${r.digest})\n`);
        }
      });
  },
};
