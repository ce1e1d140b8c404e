/** `mf rm NAME…`: removes models and the blobs no other model uses. */
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { cliContext } from "../context.js";

export const rmCommand: CommandModule<object, { names: string[] }> = {
  command: ["rm <names..>", "delete <names..>"],
  describe: "remove models",
  builder: (y) => y.positional("names", { type: "string", array: true, demandOption: true }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    for (const n of args.names) {
      const r = await store.deleteModel(n);
      process.stdout.write(`deleted '${displayRef(r.ref)}'\n`);
    }
  },
};
