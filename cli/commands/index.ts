/**
 * Every command of the `mf` binary, one file each, loaded lazily: `mf registry serve` must not pay for
 * node-llama-cpp, nor `mf list` for fastify. `main.ts` loads only the command named on the command line
 * (all of them for `--help` or an unknown word). Add a command with one entry here: the words it answers
 * to (its `command` and aliases, checked by test/e2e/commands.test.ts) and its loader.
 */
import type { CommandModule } from "yargs";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = CommandModule<any, any>;

export interface CommandEntry {
  names: string[];
  load: () => Promise<AnyCommand>;
}

export const commandEntries: CommandEntry[] = [
  { names: ["build"], load: async () => (await import("./build.js")).buildCommand },
  { names: ["list", "ls"], load: async () => (await import("./list.js")).listCommand },
  { names: ["show"], load: async () => (await import("./show.js")).showCommand },
  { names: ["inspect"], load: async () => (await import("./inspect.js")).inspectCommand },
  { names: ["convert"], load: async () => (await import("./convert.js")).convertCommand },
  { names: ["cp", "copy"], load: async () => (await import("./cp.js")).cpCommand },
  { names: ["rm", "delete"], load: async () => (await import("./rm.js")).rmCommand },
  { names: ["prune"], load: async () => (await import("./prune.js")).pruneCommand },
  { names: ["pull"], load: async () => (await import("./pull.js")).pullCommand },
  { names: ["push"], load: async () => (await import("./push.js")).pushCommand },
  { names: ["sign"], load: async () => (await import("./sign.js")).signCommand },
  { names: ["save"], load: async () => (await import("./save.js")).saveCommand },
  { names: ["load"], load: async () => (await import("./load.js")).loadCommand },
  { names: ["key"], load: async () => (await import("./key.js")).keyCommand },
  { names: ["login"], load: async () => (await import("./login.js")).loginCommand },
  { names: ["logout"], load: async () => (await import("./login.js")).logoutCommand },
  { names: ["registry"], load: async () => (await import("./registry.js")).registryCommand },
  { names: ["demo"], load: async () => (await import("./demo.js")).demoCommand },
  { names: ["template"], load: async () => (await import("./template.js")).templateCommand },
  { names: ["serve", "start"], load: async () => (await import("./serve.js")).serveCommand },
  { names: ["run"], load: async () => (await import("./run.js")).runCommand },
  { names: ["ps"], load: async () => (await import("./ps.js")).psCommand },
  { names: ["stop"], load: async () => (await import("./stop.js")).stopCommand },
  { names: ["engine"], load: async () => (await import("./engine.js")).engineCommand },
];

/** The commands needed to run `argv`: the one it names, or every one (help, typos). */
export async function commandsFor(argv: string[]): Promise<AnyCommand[]> {
  const word = argv.find((a) => !a.startsWith("-"));
  const entry = word === undefined ? undefined : commandEntries.find((e) => e.names.includes(word));
  return Promise.all((entry ? [entry] : commandEntries).map((e) => e.load()));
}
