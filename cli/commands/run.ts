/**
 * `mf run NAME [PROMPT]`: talks to a running `mf serve` (it starts nothing itself). With a prompt (or a
 * piped stdin) it streams one answer; without, an interactive chat as `ollama run` has it: line editing
 * and history on a terminal (cli/line-input), Ctrl-C stops an answer, `/bye` or Ctrl-D exits,
 * `/set parameter NAME VALUE`, `/set system TEXT`, `/show [info|parameters|system|…]`, `/clear`, and
 * `"""` for multi-line input.
 */
import type { CommandModule } from "yargs";
import { formatParameters } from "../../builder/describe.js";
import { MfError } from "../../core/errors.js";
import { PARAMETER_NAMES, parameterSpec, typeParameter } from "../../grammar/modelfile/params.js";
import { nearest } from "../../grammar/modelfile/suggest.js";
import { RuntimeClient, baseUrl } from "../../runtime/client.js";
import { cliContext } from "../context.js";
import { LineInput } from "../line-input.js";

interface RunArgs {
  name: string;
  prompt?: string[];
  keepalive?: string;
  format?: string;
  interactive?: boolean;
  verbose?: boolean;
}

interface Final {
  done: boolean;
  eval_count?: number;
  eval_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  total_duration?: number;
  load_duration?: number;
}

const out = (s: string) => process.stdout.write(s);

function printStats(f: Final): void {
  const s = (ns = 0) => `${(ns / 1e9).toFixed(3)}s`;
  const rate = (n = 0, ns = 0) => (ns > 0 ? `${((n * 1e9) / ns).toFixed(2)} tokens/s` : "-");
  process.stderr.write(
    `total duration:       ${s(f.total_duration)}\nload duration:        ${s(f.load_duration)}\n` +
      `prompt eval count:    ${f.prompt_eval_count} token(s)\nprompt eval rate:     ${rate(f.prompt_eval_count, f.prompt_eval_duration)}\n` +
      `eval count:           ${f.eval_count} token(s)\neval rate:            ${rate(f.eval_count, f.eval_duration)}\n`,
  );
}

async function readStdin(): Promise<string> {
  let s = "";
  for await (const chunk of process.stdin) s += chunk;
  return s;
}

const HELP = `Available commands:
  /set parameter NAME VALUE   set a parameter for this session (e.g. /set parameter temperature 0.2)
  /set system TEXT            set the system message
  /show [info]                show the model's details, with this session's parameters and system message
  /show parameters            show the parameters: this session's, then the model's
  /show system | template | license | modelfile
  /clear                      forget the conversation
  /bye                        exit (or Ctrl-D)
  """                         begin or end a multi-line message

Ctrl-C stops an answer (the exchange is left out of the conversation) or discards the line being typed.
`;

interface ShowAnswer {
  details: Record<string, unknown>;
  parameters?: string;
  system?: string;
  template?: string;
  license?: string;
  modelfile?: string;
}

/** What the chat's `/set parameter` and `/set system` changed for this session. */
interface Session {
  options: Record<string, unknown>;
  system?: string;
}

/** `/set parameter NAME VALUE`: the session's options, or the message that says what is wrong. */
function setParameter(options: Record<string, unknown>, name: string, raw: string): string {
  const spec = parameterSpec(name);
  if (!spec) {
    const hint = nearest(name, PARAMETER_NAMES);
    return `Couldn't set parameter: unknown parameter "${name}"${hint ? ` (did you mean "${hint}"?)` : ""}\n`;
  }
  const typed = typeParameter(spec.name, raw);
  if (!typed.ok) return `Couldn't set parameter: "${spec.name}" needs ${typed.expected}, got "${raw}"\n`;
  options[spec.name] = spec.type === "stringList" ? [...((options[spec.name] as string[] | undefined) ?? []), typed.value] : typed.value;
  return `Set parameter '${spec.name}' to '${raw}'\n`;
}

const indent = (text: string) => text.split("\n").map((l) => `    ${l}`).join("\n");

/** The model's parameter lines, those the session sets replaced by the session's. */
function effectiveParameters(model: string | undefined, session: Record<string, unknown>): string {
  const lines = (model ? model.split("\n") : []).filter((l) => !Object.hasOwn(session, l.split(/\s/, 1)[0]!));
  const mine = formatParameters(session);
  if (mine) lines.push(...mine.split("\n"));
  return lines.sort((a, b) => a.split(/\s/, 1)[0]!.localeCompare(b.split(/\s/, 1)[0]!)).join("\n");
}

/** `/show …` as Ollama's chat answers it, with what this session set. */
function showText(what: string, s: ShowAnswer, session: Session): string | undefined {
  const system = session.system ?? s.system;
  switch (what) {
    case "":
    case "info": {
      let text = `  Model\n${Object.entries(s.details).map(([k, v]) => `    ${k.padEnd(20)} ${String(v)}`).join("\n")}\n`;
      const params = effectiveParameters(s.parameters, session.options);
      if (params) text += `\n  Parameters\n${indent(params)}\n`;
      if (system) text += `\n  System\n${indent(system)}\n`;
      if (s.license) text += `\n  License\n${indent(s.license.split("\n").slice(0, 2).join("\n"))}\n`;
      return text;
    }
    case "parameters": {
      const mine = formatParameters(session.options);
      if (!mine && !s.parameters) return "No parameters were specified for this model.\n";
      return (mine ? `User defined parameters:\n${mine}\n` : "") + (s.parameters ? `Model defined parameters:\n${s.parameters}\n` : "");
    }
    case "system":
      return system ? `${system}\n` : "No system message was specified for this model.\n";
    case "template":
      return s.template ? `${s.template}\n` : "No prompt template was specified for this model.\n";
    case "license":
      return s.license ? `${s.license}\n` : "No license was specified for this model.\n";
    case "modelfile":
      return s.modelfile ?? "";
    default:
      return undefined;
  }
}

async function chat(client: RuntimeClient, args: RunArgs): Promise<void> {
  const input = new LineInput();
  const messages: { role: string; content: string }[] = [];
  const session: Session = { options: {} };
  out(`>>> Send a message (/? for help)\n`);
  try {
    for (;;) {
      const first = await input.read(">>> ");
      if (first.kind === "end") {
        if (input.terminal) out("\n");
        break;
      }
      if (first.kind === "interrupt") {
        if (!first.typed) out("\nUse Ctrl + d or /bye to exit.\n");
        continue;
      }
      let line = first.text;
      if (line.trimStart().startsWith('"""')) {
        const parts = [line.trimStart().slice(3)];
        let interrupted = false;
        while (!parts[parts.length - 1]!.trimEnd().endsWith('"""')) {
          const more = await input.read("... ");
          if (more.kind === "interrupt") interrupted = true;
          if (more.kind !== "line") break;
          parts.push(more.text);
        }
        if (interrupted) {
          // the multi-line message is dropped
          out("\n");
          continue;
        }
        line = parts.join("\n").replace(/"""\s*$/, "");
      }
      const cmd = line.trim();
      if (cmd === "") continue;
      if (cmd === "/bye" || cmd === "/exit") break;
      if (cmd === "/?" || cmd === "/help") {
        out(HELP);
        continue;
      }
      if (cmd === "/clear") {
        messages.length = 0;
        out("Cleared session context\n");
        continue;
      }
      const show = /^\/show(?:\s+(\S+))?$/.exec(cmd);
      if (show) {
        const s = await client.json<ShowAnswer>("/api/show", { model: args.name });
        out(showText(show[1] ?? "", s, session) ?? `Unknown command '${cmd}'. Type /? for help\n`);
        continue;
      }
      if (/^\/set(\s|$)/.test(cmd)) {
        const param = /^\/set\s+parameter\s+(\S+)\s+(.+)$/.exec(cmd);
        const sys = /^\/set\s+system\s+([\s\S]+)$/.exec(cmd);
        if (param) out(setParameter(session.options, param[1]!, param[2]!));
        else if (sys) {
          session.system = sys[1]!;
          out("Set system message.\n");
        } else out("Usage: /set parameter NAME VALUE, or /set system TEXT\n");
        continue;
      }
      if (cmd.startsWith("/")) {
        out(`Unknown command '${cmd.split(/\s/)[0]}'. Type /? for help\n`);
        continue;
      }
      messages.push({ role: "user", content: line });
      const ac = new AbortController();
      const uncancellable = input.cancellable(() => ac.abort());
      let answer = "";
      try {
        const history = session.system ? [{ role: "system", content: session.system }, ...messages] : messages;
        const body = { model: args.name, messages: history, options: session.options, keep_alive: args.keepalive, format: args.format };
        for await (const part of client.stream<Final & { message?: { content: string } }>("/api/chat", body, ac.signal)) {
          if (part.message?.content) {
            out(part.message.content);
            answer += part.message.content;
          }
          if (part.done && args.verbose) printStats(part);
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      } finally {
        uncancellable();
      }
      out("\n\n");
      // a cancelled answer is left out, with its question: the next one starts from what was answered
      if (ac.signal.aborted) messages.pop();
      else messages.push({ role: "assistant", content: answer });
    }
  } finally {
    input.close();
  }
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run <name> [prompt..]",
  describe: "chat with a model of a running `mf serve` (one answer when a prompt is given)",
  builder: (y) =>
    y
      .positional("name", { type: "string", demandOption: true, describe: "model name" })
      .positional("prompt", { type: "string", array: true, describe: "prompt (else an interactive chat)" })
      .option("keepalive", { type: "string", describe: "how long the model stays loaded (e.g. 5m, 0, -1)" })
      .option("format", { type: "string", describe: 'response format ("json")' })
      .option("interactive", { type: "boolean", describe: "chat even when stdin is not a terminal" }) as never,
  handler: async (args) => {
    const { config } = cliContext();
    const client = new RuntimeClient(baseUrl(config.host));
    if (!(await client.reachable())) {
      throw new MfError("SERVICE_UNAVAILABLE", `no server at ${client.base}: start one with \`mf serve\` (in another terminal), or set MF_HOST`);
    }
    let prompt = (args.prompt ?? []).join(" ");
    if (args.interactive) prompt = "";
    else if (!process.stdin.isTTY && !prompt) prompt = (await readStdin()).trim();
    else if (!process.stdin.isTTY && prompt) prompt = `${prompt}\n\n${(await readStdin()).trim()}`.trim();
    if (!prompt) {
      await client.json("/api/generate", { model: args.name, keep_alive: args.keepalive });
      await chat(client, args);
      return;
    }
    for await (const part of client.stream<Final & { response?: string }>("/api/generate", { model: args.name, prompt, keep_alive: args.keepalive, format: args.format })) {
      if (part.response) out(part.response);
      if (part.done && args.verbose) {
        out("\n");
        printStats(part);
      }
    }
    out("\n");
  },
};
