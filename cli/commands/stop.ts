/** `mf stop NAME`: unloads a model from a running `mf serve` (a generate with keep_alive 0, as Ollama does). */
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { RuntimeClient, baseUrl } from "../../runtime/client.js";
import { cliContext } from "../context.js";

export const stopCommand: CommandModule<object, { name: string }> = {
  command: "stop <name>",
  describe: "unload a model from a running `mf serve`",
  builder: (y) => y.positional("name", { type: "string", demandOption: true, describe: "model name" }) as never,
  handler: async (args) => {
    const client = new RuntimeClient(baseUrl(cliContext().config.host));
    if (!(await client.reachable())) throw new MfError("SERVICE_UNAVAILABLE", `no server at ${client.base}: start one with \`mf serve\``);
    await client.json("/api/generate", { model: args.name, keep_alive: 0 });
  },
};
