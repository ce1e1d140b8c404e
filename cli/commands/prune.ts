/** `mf prune`: removes stale temp files, old partial downloads and unreferenced blobs. */
import type { CommandModule } from "yargs";
import { cliContext, writeJson } from "../context.js";
import { formatBytes } from "../progress.js";

export const pruneCommand: CommandModule<object, { json?: boolean; "dry-run"?: boolean }> = {
  command: "prune",
  describe: "remove temp files older than 1 hour, partial downloads older than 24 hours, and unreferenced blobs older than 1 hour",
  builder: (y) => y.option("json", { type: "boolean" }).option("dry-run", { type: "boolean", describe: "only say what would go" }) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const r = await store.prune({ dryRun: args["dry-run"] });
    if (args.json) return writeJson(r);
    const [removed, freed] = args["dry-run"] ? ["would remove", "would free"] : ["removed", "freed"];
    for (const t of r.removedTemp) process.stdout.write(`${removed} temp file ${t}\n`);
    for (const b of r.removedBlobs) process.stdout.write(`${removed} blob ${b}\n`);
    process.stdout.write(`${freed} ${formatBytes(r.freedBytes)}\n`);
  },
};
