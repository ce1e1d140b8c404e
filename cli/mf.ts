/** The `mf` binary's commands, one yargs command per file under cli/commands/ (started by main.ts). */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { commandsFor } from "./commands/index.js";
import { runMain } from "./run.js";

await runMain(async () => {
  const argv = hideBin(process.argv);
  const commands = await commandsFor(argv);
  let y = yargs(argv)
    .scriptName("mf")
    .usage("$0 <command> [options]")
    .option("verbose", { type: "boolean", describe: "debug logging", global: true })
    .strict()
    .demandCommand(1, "name a command; `mf --help` lists them")
    .recommendCommands()
    .help()
    .version()
    .fail((msg, err, yy) => {
      if (err) throw err;
      process.stderr.write(`mf: ${msg}\n`);
      process.stderr.write(`Run \`mf --help\` for usage.\n`);
      process.exit(2);
    });
  for (const c of commands) y = y.command(c);
  await y.parseAsync();
});
