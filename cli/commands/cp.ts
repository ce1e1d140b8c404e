/** `mf cp SRC DST`: another name for the same image. */
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { cliContext } from "../context.js";

export const cpCommand: CommandModule<object, { source: string; destination: string }> = {
  command: ["cp <source> <destination>", "copy <source> <destination>"],
  describe: "copy a model to a new name",
  builder: (y) => y.positional("source", { type: "string", demandOption: true }).positional("destination", { type: "string", demandOption: true }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const from = await store.readModel(args.source);
    const w = await store.copyModel(from.ref, args.destination);
    process.stdout.write(`copied '${displayRef(from.ref)}' to '${displayRef(w.ref)}'\n`);
  },
};
