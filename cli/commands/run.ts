/**
 * `mf run NAME [PROMPT]`: talks to a running `mf serve` (it starts nothing itself). With a prompt (or a
 * piped stdin) it streams one answer; without, an interactive chat with history, `/bye`,
 * `/set parameter NAME VALUE`, `/set system TEXT`, `/show`, `/clear`, and `"""` for multi-line input.
 */
import { createInterface } from "node:readline/promises";
import type { CommandModule } from "yargs";
import { MfError } from "../../core/errors.js";
import { typeParameter } from "../../grammar/modelfile/params.js";
import { RuntimeClient, baseUrl } from "../../runtime/client.js";
import { cliContext } from "../context.js";

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
  /set parameter NAME VALUE   set a parameter (e.g. /set parameter temperature 0.2)
  /set system TEXT            set the system message
  /show                       show the model's details
  /clear                      forget the conversation
  /bye                        exit
  """                         begin or end a multi-line message
`;

async function chat(client: RuntimeClient, args: RunArgs): Promise<void> {
  const rl = createInterface({ input: process.stdin, terminal: process.stdin.isTTY });
  const lines = rl[Symbol.asyncIterator]();
  const messages: { role: string; content: string }[] = [];
  const options: Record<string, unknown> = {};
  let system: string | undefined;
  const ask = async (prompt: string): Promise<string | undefined> => {
    out(prompt);
    const r = await lines.next();
    return r.done ? undefined : r.value;
  };
  out(`>>> Send a message (/? for help)\n`);
  for (;;) {
    let line = await ask(">>> ");
    if (line === undefined) break;
    if (line.trimStart().startsWith('"""')) {
      const parts = [line.trimStart().slice(3)];
      while (!parts[parts.length - 1]!.trimEnd().endsWith('"""')) {
        const more = await ask("... ");
        if (more === undefined) break;
        parts.push(more);
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
    if (cmd === "/show") {
      const s = await client.json<{ details: Record<string, unknown>; parameters: string; system: string }>("/api/show", { model: args.name });
      out(`  Model\n${Object.entries(s.details).map(([k, v]) => `    ${k.padEnd(20)} ${String(v)}`).join("\n")}\n`);
      if (s.parameters) out(`  Parameters\n${s.parameters.split("\n").map((l) => `    ${l}`).join("\n")}\n`);
      if (system ?? s.system) out(`  System\n    ${system ?? s.system}\n`);
      continue;
    }
    const set = /^\/set\s+parameter\s+(\S+)\s+(.+)$/.exec(cmd);
    if (set) {
      const typed = typeParameter(set[1]!, set[2]!);
      if (!typed.ok) out(`Couldn't set parameter: ${typed.expected}\n`);
      else {
        options[set[1]!] = set[1] === "stop" ? [...((options.stop as string[]) ?? []), typed.value] : typed.value;
        out(`Set parameter '${set[1]}' to '${set[2]}'\n`);
      }
      continue;
    }
    const sys = /^\/set\s+system\s+([\s\S]+)$/.exec(cmd);
    if (sys) {
      system = sys[1]!;
      out("Set system message.\n");
      continue;
    }
    if (cmd.startsWith("/")) {
      out(`Unknown command '${cmd.split(/\s/)[0]}'. Type /? for help\n`);
      continue;
    }
    messages.push({ role: "user", content: line });
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once("SIGINT", onSigint);
    let answer = "";
    try {
      const body = { model: args.name, messages: system ? [{ role: "system", content: system }, ...messages] : messages, options, keep_alive: args.keepalive, format: args.format };
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
      process.off("SIGINT", onSigint);
    }
    out("\n\n");
    messages.push({ role: "assistant", content: answer });
  }
  rl.close();
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
