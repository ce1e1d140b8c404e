/**
 * `mf push NAME` pushes the local model NAME to the registry its name points at; `mf push SRC DEST` is
 * `mf cp SRC DEST` then `mf push DEST`. Interrupted pushes resume from the registry's offset.
 */
import type { CommandModule } from "yargs";
import { displayRef, parseRef } from "../../core/reference.js";
import { cliContext } from "../context.js";
import { signingKey } from "../credentials.js";
import { parseByteSize, withTransfer } from "../transfer.js";

interface Args {
  name: string;
  destination?: string;
  insecure?: boolean;
  quiet?: boolean;
  key?: string;
  "chunk-size"?: string;
  sign?: boolean;
}

export const pushCommand: CommandModule<object, Args> = {
  command: "push <name> [destination]",
  describe: "push a model to a registry",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "local model" })
      .positional("destination", { type: "string", describe: "push under this name (copied locally first)" })
      .option("insecure", { type: "boolean", default: false, describe: "use plain HTTP" })
      .option("key", { type: "string", describe: "ssh private key for registries with keys (default MF_KEY or ~/.mf/id_ed25519)" })
      .option("sign", { type: "boolean", default: false, describe: "sign it with the key (docs/signatures.md): manifest by digest, the signature, then the tag" })
      .option("chunk-size", { type: "string", describe: "bytes per upload request (e.g. 64M; 0 = one streamed request per blob)" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "no progress output" }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    let target = parseRef(args.name);
    if (args.destination) {
      const from = await store.readModel(args.name);
      target = (await store.copyModel(from.ref, args.destination)).ref;
      if (!args.quiet) process.stderr.write(`copied '${displayRef(from.ref)}' to '${displayRef(target)}'\n`);
    }
    const chunkSize = parseByteSize(args["chunk-size"]);
    const sign = args.sign ? signingKey(args.key) : undefined;
    const r = await withTransfer(`mf push ${args.insecure ? "--insecure " : ""}${args.sign ? "--sign " : ""}${displayRef(target)}`, ({ client, signal, onProgress }) =>
      client.push(store, target, { insecure: args.insecure, signal, onProgress, sign: sign?.key }), { quiet: args.quiet, chunkSize, key: args.key });
    if (args.quiet) process.stdout.write(`${r.digest}\n`);
    else {
      process.stderr.write(`pushed ${displayRef(target)} (${r.digest}): ${r.uploaded} uploaded, ${r.mounted} mounted, ${r.skipped} already there\n`);
      if (r.signature) process.stderr.write(`signed with ${r.signature.key} (${sign!.path}): signature ${r.signature.digest}${r.signature.fallbackTag ? ` (listed under tag ${r.digest.replace(":", "-")}: the registry has no referrers API)` : ""}\n`);
    }
  },
};
