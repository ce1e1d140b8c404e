/**
 * `mf engine build` compiles node-llama-cpp's addon with mf's patch (a persistent threadpool per context)
 * for this machine, into MF_ENGINE_DIR (default ~/.mf/engine), where `mf serve` finds it; `mf engine
 * status` says which binding `mf serve` would run and why. The logic is in runtime/engine/binding*.ts.
 */
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { cliContext } from "../context.js";

interface BuildArgs {
  dir?: string;
  gpu?: boolean;
  jobs?: number;
  force?: boolean;
}

const buildCommand: CommandModule<object, BuildArgs> = {
  command: "build",
  describe: "build the engine for this CPU (plus CUDA/Vulkan when usable here and their toolkit is installed), offline",
  builder: (y) =>
    y
      .option("dir", { type: "string", describe: "where to put it (MF_ENGINE_DIR, default ~/.mf/engine)" })
      .option("gpu", { type: "boolean", default: true, describe: "also build for the GPUs found here (--no-gpu: CPU only)" })
      .option("jobs", { type: "number", describe: "parallel compile jobs (default: the CPUs available)" })
      .option("force", { type: "boolean", default: false, describe: "build again what is already built for this machine" }) as never,
  handler: async (args) => {
    const dir = args.dir ?? cliContext().config.engineDir;
    if (args.jobs !== undefined && !(Number.isInteger(args.jobs) && args.jobs > 0)) throw new MfError("BAD_REQUEST", `--jobs must be a positive integer, not ${args.jobs}`);
    const { buildEngine } = await import("../../runtime/engine/binding-build.js");
    const built = await buildEngine({ dir, gpu: args.gpu !== false, jobs: args.jobs, force: args.force, log: (line) => process.stderr.write(`mf engine: ${line}\n`) });
    for (const b of built) process.stdout.write(`${b.variant}\t${b.dir}\n`);
  },
};

interface StatusArgs {
  dir?: string;
  gpu?: boolean;
}

const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "say which engine `mf serve` runs, and why",
  builder: (y) =>
    y
      .option("dir", { type: "string", describe: "the engine directory (MF_ENGINE_DIR, default ~/.mf/engine)" })
      .option("gpu", { type: "boolean", default: true, describe: "as `mf serve --gpu` (--no-gpu: CPU only)" }) as never,
  handler: async (args) => {
    const dir = args.dir ?? cliContext().config.engineDir;
    const { chooseEngine } = await import("../../runtime/engine/binding.js");
    const choice = await chooseEngine({ dir, gpu: args.gpu === false ? false : "auto" });
    process.stdout.write(`${choice.kind}: ${choice.description}\n`);
  },
};

export const engineCommand: CommandModule<object, object> = {
  command: "engine <command>",
  describe: "build the inference engine for this machine (build, status)",
  builder: (y) => y.command(buildCommand as CommandModule<object, object>).command(statusCommand as CommandModule<object, object>).demandCommand(1),
  handler: () => {},
};
