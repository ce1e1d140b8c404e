/** `mf ps`: the models a running `mf serve` has loaded, like `ollama ps`. */
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { RuntimeClient, baseUrl } from "../../runtime/client.js";
import { cliContext, writeJson } from "../context.js";
import { formatBytes } from "../progress.js";
import { table } from "../table.js";

interface PsModel {
  name: string;
  digest: string;
  size: number;
  size_vram: number;
  expires_at: string;
  context_length?: number;
  draft?: { digest: string; size: number; draft_num_predict: number };
  /** CPU threads the model runs with (mf's own field) */
  threads?: number;
}

function until(iso: string, now = Date.now()): string {
  const ms = Date.parse(iso) - now;
  if (ms > 100 * 365 * 86_400_000) return "Forever";
  if (ms <= 0) return "Stopping...";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} seconds from now`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} minute${m === 1 ? "" : "s"} from now` : `${Math.round(m / 60)} hours from now`;
}

export const psCommand: CommandModule<object, { json?: boolean }> = {
  command: "ps",
  describe: "list the models a running `mf serve` has loaded",
  builder: (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }) as never,
  handler: async (args) => {
    const client = new RuntimeClient(baseUrl(cliContext().config.host));
    if (!(await client.reachable())) throw new MfError("SERVICE_UNAVAILABLE", `no server at ${client.base}: start one with \`mf serve\``);
    const { models } = await client.json<{ models: PsModel[] }>("/api/ps");
    if (args.json) return writeJson(models);
    // a DRAFT column only when a loaded model decodes with a draft model: its ID and draft_num_predict
    const drafts = models.some((m) => m.draft);
    const rows = models.map((m) => [
      m.name,
      m.digest.slice(0, 12),
      formatBytes(m.size),
      m.size_vram > 0 ? (m.size_vram >= m.size ? "100% GPU" : `${Math.round((100 * m.size_vram) / m.size)}% GPU`) : "100% CPU",
      String(m.context_length ?? ""),
      ...(drafts ? [m.draft ? `${m.draft.digest.slice(0, 12)} (${m.draft.draft_num_predict} tokens)` : "-"] : []),
      until(m.expires_at),
    ]);
    process.stdout.write(table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", ...(drafts ? ["DRAFT"] : []), "UNTIL"], rows));
  },
};
