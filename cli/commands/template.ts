/**
 * `mf template render --template-file T.tmpl | --model NAME  [--data-file D.json | --messages-file M.json]`
 *
 * Prints what a prompt template produces, with nothing added: `--data-file` executes the template on the
 * JSON exactly as given (an object is the map the template sees; integral JSON numbers are Go ints, the
 * others float64; no data file: an empty map); `--messages-file` (a chat request's `messages`, with optional `tools` and `think`, or
 * a bare array of messages) renders it as `/api/chat` would, the model's SYSTEM and MESSAGEs included
 * when `--model` names the template's image. A template error goes to stderr with its line:column.
 */
import { readFile } from "node:fs/promises";
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { MediaType } from "../../core/mediatypes.js";
import { parseTemplate } from "../../grammar/template/index.js";
import { renderChatPrompt, type ChatMessage, type ChatRequest, type ImagePrompt } from "../../runtime/prompt/index.js";
import { cliContext } from "../context.js";

interface Args {
  action: string;
  "template-file"?: string;
  "data-file"?: string;
  "messages-file"?: string;
  model?: string;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new MfError("FILE_NOT_FOUND", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MfError("BAD_REQUEST", `${path} is not JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** The template (with its layer digest, the cache key), SYSTEM and MESSAGEs of a model in the local store. */
export async function imagePromptOf(name: string): Promise<ImagePrompt> {
  const { store } = cliContext();
  const model = await store.readModel(name);
  const image: ImagePrompt = { template: null, system: null, messages: [] };
  const text = async (digest: string) => (await store.readBlob(digest)).toString("utf8");
  for (const l of model.manifest.layers) {
    if (l.mediaType === MediaType.template || l.mediaType === MediaType.prompt) {
      image.template = await text(l.digest);
      image.templateDigest = l.digest;
    } else if (l.mediaType === MediaType.system) image.system = await text(l.digest);
    else if (l.mediaType === MediaType.messages) image.messages = JSON.parse(await text(l.digest)) as ChatMessage[];
  }
  return image;
}

function chatRequest(v: unknown, path: string): ChatRequest {
  if (Array.isArray(v)) return { messages: v as ChatMessage[] };
  if (v && typeof v === "object" && Array.isArray((v as { messages?: unknown }).messages)) return v as ChatRequest;
  throw new MfError("BAD_REQUEST", `${path}: expected a list of messages or an object with "messages"`);
}

export async function renderTemplateCommand(args: Omit<Args, "action">): Promise<string> {
  const image: ImagePrompt = args.model
    ? await imagePromptOf(args.model)
    : { template: await readText(args["template-file"]!) };
  if (args.model && args["template-file"]) image.template = await readText(args["template-file"]);
  if (args["messages-file"]) {
    const req = chatRequest(await readJson(args["messages-file"]), args["messages-file"]);
    return renderChatPrompt(image, req).prompt;
  }
  const template = parseTemplate(image.template ?? "");
  const data = args["data-file"] ? await readJson(args["data-file"]) : {};
  return template.execute(data);
}

export const templateCommand: CommandModule<object, Args> = {
  command: "template <action>",
  describe: "work with prompt templates (`render`: print what a template produces)",
  builder: (y) =>
    y
      .positional("action", { type: "string", choices: ["render"], demandOption: true })
      .option("template-file", { type: "string", describe: "the Go text/template to render" })
      .option("model", { type: "string", describe: "take the template (and SYSTEM, MESSAGEs) from this model" })
      .option("data-file", { type: "string", describe: "JSON data the template executes on, as given" })
      .option("messages-file", { type: "string", describe: "a chat request's messages (and tools), rendered as /api/chat would" })
      .conflicts("data-file", "messages-file")
      .check((a) => {
        if (!a["template-file"] && !a.model) throw new Error("give --template-file or --model");
        return true;
      }) as never,
  handler: async (args) => {
    process.stdout.write(await renderTemplateCommand(args));
  },
};
