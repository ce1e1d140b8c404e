/** `mf list`: the models in the store, like `ollama list`. */
import type { CommandModule } from "yargs";
import { displayRef } from "../../core/reference.js";
import { cliContext, writeJson } from "../context.js";
import { formatBytes } from "../progress.js";
import { table, timeAgo } from "../table.js";

export const listCommand: CommandModule<object, { json?: boolean }> = {
  command: ["list", "ls"],
  describe: "list models in the local store",
  builder: (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const models = await store.listModels();
    if (args.json) {
      writeJson(models.map((m) => ({ name: displayRef(m.ref), digest: m.digest, size: m.size, modified_at: m.modified.toISOString() })));
      return;
    }
    const rows = models.map((m) => [displayRef(m.ref), m.digest.slice(7, 19), formatBytes(m.size), timeAgo(m.modified)]);
    process.stdout.write(table(["NAME", "ID", "SIZE", "MODIFIED"], rows));
  },
};
