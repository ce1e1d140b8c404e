/** `mf convert NAME --format ollama|modelpack|docker-model [-t NEWNAME]`: an image written again in another format. */
import type { CommandModule } from "yargs";
import { changeFormat, WRITE_FORMATS, type WriteFormat } from "../../builder/formats/index.js";
import { displayRef, parseRef } from "../../core/reference.js";
import { cliContext } from "../context.js";

interface Args {
  name: string;
  format: WriteFormat;
  tag?: string;
}

export const convertCommand: CommandModule<object, Args> = {
  command: "convert <name>",
  describe: "write a model again as an Ollama image, a CNCF ModelPack artifact or a Docker Model Runner image",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "the model to convert" })
      .option("format", { type: "string", choices: WRITE_FORMATS, demandOption: true, describe: "the format to write" })
      .option("tag", { alias: "t", type: "string", requiresArg: true, describe: "store the result under this name (default: replace NAME)" }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const model = await store.readModel(args.name);
    const target = args.tag ? parseRef(args.tag) : model.ref;
    const out = await changeFormat(store, model, args.format);
    for (const n of out.notes) process.stderr.write(`${n}\n`);
    const w = await store.writeManifest(target, out.bytes);
    process.stderr.write(`${displayRef(w.ref)}: ${out.from} image ${model.digest} → ${args.format} image ${w.digest}\n`);
    process.stdout.write(`${w.digest}\n`);
  },
};
