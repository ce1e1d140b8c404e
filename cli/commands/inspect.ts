/** `mf inspect NAME`: the raw manifest and config. */
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { cliContext, writeJson } from "../context.js";

export const inspectCommand: CommandModule<object, { name: string }> = {
  command: "inspect <name>",
  describe: "print the raw manifest and config of a model",
  builder: (y) => y.positional("name", { type: "string", demandOption: true }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const m = await store.readModel(args.name);
    const config = JSON.parse((await store.readBlob(m.manifest.config.digest)).toString("utf8")) as unknown;
    writeJson({ name: displayRef(m.ref), digest: m.digest, manifest: JSON.parse(m.bytes.toString("utf8")) as unknown, config });
  },
};
