/** `mf build -t NAME[:TAG] [-t …] [-f Modelfile] CONTEXT_DIR`, like `docker build`. */
import { resolve, join } from "node:path";
import type { CommandModule } from "yargs";
import { buildFromModelfile } from "../../builder/build.js";
import { displayRef, parseRef } from "../../core/reference.js";
import { cliContext } from "../context.js";
import { progressRenderer } from "../progress.js";
import type { RegistryClient } from "../../registry/client/index.js";

interface Args {
  context: string;
  tag: string | string[];
  file?: string;
  link?: boolean;
  quiet?: boolean;
  insecure?: boolean;
  key?: string;
  format?: string;
}

export const buildCommand: CommandModule<object, Args> = {
  command: "build [context]",
  describe: "build an image from a Modelfile",
  builder: (y) =>
    y
      .positional("context", { type: "string", default: ".", describe: "build context directory" })
      .option("tag", { alias: "t", type: "string", requiresArg: true, demandOption: true, describe: "name[:tag] of the image (repeatable)" })
      .option("file", { alias: "f", type: "string", describe: "Modelfile (default: CONTEXT/Modelfile)" })
      .option("link", { type: "boolean", default: false, describe: "hard-link model files into the store instead of copying (an in-place edit of the source then changes the stored blob)" })
      .option("quiet", { alias: "q", type: "boolean", default: false, describe: "print only the image digest" })
      .option("insecure", { type: "boolean", default: false, describe: "pull a missing FROM base over plain HTTP" })
      .option("key", { type: "string", describe: "ssh private key for registries with keys (default MF_KEY or ~/.mf/id_ed25519)" })
      .option("format", { type: "string", choices: ["ollama", "modelpack", "docker-model"], default: "ollama", describe: "image format: Ollama's, a CNCF ModelPack artifact or a Docker Model Runner image" }) as never,
  handler: async (args) => {
    const ctx = cliContext();
    // repeated -t gives an array; a greedy array option would swallow the context directory
    const tags = [args.tag].flat().map((t) => parseRef(t));
    const contextDir = resolve(args.context);
    const file = args.file ? resolve(args.file) : join(contextDir, "Modelfile");
    const progress = args.quiet ? undefined : progressRenderer();
    // a FROM naming a model the store lacks is pulled through the registry client, with the same
    // credentials as `mf pull` (a stored API key, else the ssh key); loaded only then, so a build from
    // files does not spend its start-up on undici, tar and ssh2
    let registry: RegistryClient | undefined;
    const result = await buildFromModelfile(file, {
      store: ctx.store,
      tags,
      contextDir,
      homeDir: ctx.homeDir,
      link: args.link,
      onProgress: progress,
      onWarning: (w) => process.stderr.write(`${w}\n`),
      resolveBase: async (ref, signal) => {
        const [{ RegistryClient }, { cliAuthenticator }, { pullPolicy }] = await Promise.all([import("../../registry/client/index.js"), import("../credentials.js"), import("../verify.js")]);
        const { pullConverter } = await import("../../builder/formats/index.js");
        registry ??= new RegistryClient({ authenticate: cliAuthenticator(args.key), convert: pullConverter });
        // a verify rule of the config file applies to a FROM base as to `mf pull`
        await registry.pull(ctx.store, ref, { insecure: args.insecure, signal, onProgress: progress, verify: pullPolicy(ctx.config.home, ref, {}) });
      },
    }).finally(() => registry?.close());
    progress?.done();
    let digest = result.digest;
    if (args.format && args.format !== "ollama") {
      // the image is built as Ollama's, then written again in the format asked for under the same names
      const { changeFormat } = await import("../../builder/formats/index.js");
      const model = await ctx.store.readModel(result.refs[0]!);
      const out = await changeFormat(ctx.store, model, args.format as "modelpack" | "docker-model").catch((e: unknown) => {
        // the Ollama image is built and stored; say so, so that the name is not taken for the format asked
        if (e instanceof Error) e.message += ` (the Ollama image ${result.digest} was built and stored under ${result.refs.map((r) => displayRef(r)).join(", ")})`;
        throw e;
      });
      for (const n of out.notes) process.stderr.write(`${n}\n`);
      for (const ref of result.refs) await ctx.store.writeManifest(ref, out.bytes);
      digest = out.digest;
    }
    process.stdout.write(`${digest}\n`);
  },
};
