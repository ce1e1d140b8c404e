/**
 * `mf stop NAME`: unloads a model from a running `mf serve` (a generate with keep_alive 0, as Ollama does).
 * A model that exists but is not loaded is said so (exit 0); an unknown one is an error (exit 1).
 */
import type { CommandModule } from "yargs";
import { MfError, isMfError } from "../../core/errors.js";
import { refKey, tryParseRef } from "../../core/reference.js";
import { RuntimeClient, baseUrl } from "../../runtime/client.js";
import { cliContext } from "../context.js";

/** The same key for every spelling of one name (`chat`, `chat:latest`, `registry.ollama.ai/library/chat`). */
const nameKey = (name: string) => {
  const ref = tryParseRef(name);
  return ref ? refKey(ref) : name.toLowerCase();
};

export const stopCommand: CommandModule<object, { name: string }> = {
  command: "stop <name>",
  describe: "unload a model from a running `mf serve`",
  builder: (y) => y.positional("name", { type: "string", demandOption: true, describe: "model name" }) as never,
  handler: async (args) => {
    const client = new RuntimeClient(baseUrl(cliContext().config.host));
    if (!(await client.reachable())) throw new MfError("SERVICE_UNAVAILABLE", `no server at ${client.base}: start one with \`mf serve\``);
    try {
      await client.json("/api/show", { model: args.name });
    } catch (e) {
      if (isMfError(e) && e.code === "MODEL_NOT_FOUND") throw new MfError("MODEL_NOT_FOUND", `couldn't find model "${args.name}" to stop`);
      throw e;
    }
    // only a name that is loaded is unloaded: another name on the same weights is not this one
    const { models } = await client.json<{ models: { name: string }[] }>("/api/ps");
    if (!models.some((m) => nameKey(m.name) === nameKey(args.name))) {
      process.stdout.write(`model "${args.name}" is not loaded\n`);
      return;
    }
    await client.json("/api/generate", { model: args.name, keep_alive: 0 });
  },
};
