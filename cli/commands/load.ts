/** `mf load -i models.tar`: models from an OCI layout tar; every blob verified while reading. */
import { createReadStream } from "node:fs";
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { loadArchive } from "../../registry/client/index.js";
import { cliContext } from "../context.js";
import { progressRenderer } from "../progress.js";

interface Args {
  input: string;
  name?: string;
  quiet?: boolean;
}

export const loadCommand: CommandModule<object, Args> = {
  command: "load",
  describe: "load models from an OCI layout tar written by `mf save` (or skopeo's oci-archive)",
  builder: (y) =>
    y
      .option("input", { alias: "i", type: "string", demandOption: true, requiresArg: true, describe: "archive to read ('-' for stdin)" })
      .option("name", { type: "string", describe: "name for a single image the archive does not name" })
      .option("quiet", { alias: "q", type: "boolean", default: false }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const progress = args.quiet ? undefined : progressRenderer();
    const input = args.input === "-" ? process.stdin : createReadStream(args.input, { highWaterMark: 1 << 20 });
    const r = await loadArchive(store, input, { onProgress: progress, name: args.name });
    progress?.done();
    for (const m of r.models) process.stdout.write(`loaded ${displayRef(m.ref)} (${m.digest})\n`);
  },
};
