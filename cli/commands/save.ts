/** `mf save NAME… -o models.tar`: models as an OCI image layout tar (skopeo's `oci-archive:`), streamed. */
import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { finished } from "node:stream/promises";
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { saveModels } from "../../registry/client/index.js";
import { cliContext } from "../context.js";
import { progressRenderer } from "../progress.js";

interface Args {
  names: string[];
  output: string;
  quiet?: boolean;
}

export const saveCommand: CommandModule<object, Args> = {
  command: "save <names..>",
  describe: "write models to an OCI layout tar (for machines with no network between them)",
  builder: (y) =>
    y
      .positional("names", { type: "string", array: true, demandOption: true })
      .option("output", { alias: "o", type: "string", demandOption: true, requiresArg: true, describe: "archive to write ('-' for stdout)" })
      .option("quiet", { alias: "q", type: "boolean", default: false }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const progress = args.quiet || args.output === "-" ? undefined : progressRenderer();
    if (args.output === "-") {
      await saveModels(store, args.names, process.stdout);
      return;
    }
    // written beside the target and renamed, so a cut save never leaves a truncated archive under its name
    const tmp = `${args.output}.mf-partial`;
    const out = createWriteStream(tmp);
    try {
      const { models } = await saveModels(store, args.names, out, { onProgress: progress });
      out.end();
      await finished(out);
      await rename(tmp, args.output);
      progress?.done();
      if (!args.quiet) process.stderr.write(`saved ${models.map((m) => displayRef(m.ref)).join(", ")} to ${args.output}\n`);
    } catch (e) {
      out.destroy();
      await rm(tmp, { force: true });
      throw e;
    }
  },
};
