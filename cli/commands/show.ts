/** `mf show NAME [--modelfile|--parameters|--template|--system|--license] [--json]`. */
import type { CommandModule } from "yargs";
import { FORMAT_NAMES, imageFormat, type ImageFormat } from "../../builder/formats/media.js";
import { describeModel, draftDetails, formatParameters, modelfileOf, modelInfo } from "../../builder/describe.js";
import { formatBytes } from "../progress.js";
import { displayRef } from "../../core/reference.js";
import { cliContext, writeJson } from "../context.js";
import { readSignatureRecords } from "../../registry/client/index.js";

interface Args {
  name: string;
  modelfile?: boolean;
  parameters?: boolean;
  template?: boolean;
  system?: boolean;
  license?: boolean;
  json?: boolean;
}

export const showCommand: CommandModule<object, Args> = {
  command: "show <name>",
  describe: "show information about a model",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true })
      .option("modelfile", { type: "boolean", describe: "the Modelfile that rebuilds it" })
      .option("parameters", { type: "boolean", describe: "its parameters" })
      .option("template", { type: "boolean", describe: "its prompt template" })
      .option("system", { type: "boolean", describe: "its system message" })
      .option("license", { type: "boolean", describe: "its license(s)" })
      .option("json", { type: "boolean", describe: "everything, machine-readable" })
      .conflicts("modelfile", ["parameters", "template", "system", "license"]) as never,
  handler: async (args) => {
    const { store } = cliContext();
    const model = await store.readModel(args.name);
    const d = await describeModel(store, model);
    const out = (s: string): void => void process.stdout.write(s.endsWith("\n") || s === "" ? s : s + "\n");
    const format = imageFormat(model.manifest);
    if (format !== "ollama" && format !== "other") {
      // a ModelPack or Docker Model Runner image (mf build --format, mf convert): its format and layers
      const name = displayRef(model.ref);
      const hint = `mf serve runs Ollama images: mf convert ${name} --format ollama`;
      if (args.json) return writeJson({ name, digest: model.digest, format, config: model.manifest.config, layers: model.manifest.layers, note: hint });
      const rows = model.manifest.layers.map((l) => [l.mediaType, `${formatBytes(l.size)}  ${l.digest.replace(/^sha256:/, "").slice(0, 12)}`] as [string, string]);
      return out(`  Format\n    ${FORMAT_NAMES[format]} image (${hint})\n\n  Layers\n${rows.map(([k, v]) => `    ${k.padEnd(52)}${v}`).join("\n")}`);
    }
    if (args.modelfile) return out(modelfileOf(d));
    if (args.parameters) return out(formatParameters(d.params));
    if (args.template) return out(d.template ?? "");
    if (args.system) return out(d.system ?? "");
    if (args.license) return out(d.licenses.join("\n\n"));
    const info = await modelInfo(d);
    const draft = await draftDetails(d);
    // the signatures a pull verified (mf pull --verify, or a verify rule)
    const signatures = await readSignatureRecords(store, d.model.digest);
    if (args.json) {
      writeJson({
        name: displayRef(d.model.ref),
        digest: d.model.digest,
        details: d.details,
        parameters: d.params,
        template: d.template ?? null,
        system: d.system ?? null,
        messages: d.messages,
        license: d.licenses,
        model_info: info,
        draft: draft ?? null,
        signatures: signatures.map((r) => ({
          principals: r.signer.principals, key: `${r.signer.keyType} ${r.signer.fingerprint}`, repository: r.repository,
          signed: r.created ?? null, verified: r.verifiedAt, allowed_signers: r.allowedSigners, signature: r.manifest,
        })),
        modelfile: modelfileOf(d),
      });
      return;
    }
    const arch = d.details.family;
    const section = (title: string, rows: [string, string][]) =>
      rows.length ? `  ${title}\n${rows.map(([k, v]) => `    ${k.padEnd(20)}${v}`).join("\n")}\n\n` : "";
    let s = section("Model", [
      ["architecture", arch],
      ["parameters", d.details.parameter_size],
      ...(info[`${arch}.context_length`] !== undefined ? [["context length", String(info[`${arch}.context_length`])] as [string, string]] : []),
      ...(info[`${arch}.embedding_length`] !== undefined ? [["embedding length", String(info[`${arch}.embedding_length`])] as [string, string]] : []),
      ["quantization", d.details.quantization_level],
    ]);
    if (draft) {
      s += section("Draft", [
        ["architecture", draft.family],
        ["parameters", draft.parameter_size],
        ["quantization", draft.quantization_level],
        ["size", formatBytes(draft.size)],
        ["digest", draft.digest.replace(/^sha256:/, "").slice(0, 12)],
      ]);
    }
    const params = formatParameters(d.params);
    if (params) s += `  Parameters\n${params.split("\n").map((l) => `    ${l}`).join("\n")}\n\n`;
    if (d.system) s += section("System", [[d.system.split("\n")[0]!.slice(0, 70), ""]]);
    const source = (d.config as { mf_source?: { format: string; digest: string; name: string } } | undefined)?.mf_source;
    if (source) s += section("Converted from", [["format", FORMAT_NAMES[source.format as ImageFormat] ?? source.format], ["digest", source.digest], ["name", source.name]]);
    if (signatures.length) {
      s += section("Signatures", signatures.map((r) => [
        r.signer.principals.join(","),
        `${r.signer.keyType} ${r.signer.fingerprint}, signed ${r.created ?? "(no time given)"} for ${r.repository}, verified ${r.verifiedAt.replace(/\.\d{3}Z$/, "Z")}`,
      ] as [string, string]));
    }
    if (d.licenses.length) s += section("License", d.licenses.map((l) => [l.split("\n")[0]!.slice(0, 70), ""] as [string, string]));
    out(s.trimEnd());
  },
};
