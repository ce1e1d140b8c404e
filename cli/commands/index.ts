/** Every command of the `mf` binary, one file each. Add a command by adding its import here. */
import type { CommandModule } from "yargs";
import { buildCommand } from "./build.js";
import { cpCommand } from "./cp.js";
import { demoCommand } from "./demo.js";
import { inspectCommand } from "./inspect.js";
import { listCommand } from "./list.js";
import { loadCommand } from "./load.js";
import { pruneCommand } from "./prune.js";
import { pullCommand } from "./pull.js";
import { pushCommand } from "./push.js";
import { registryCommand } from "./registry.js";
import { rmCommand } from "./rm.js";
import { saveCommand } from "./save.js";
import { showCommand } from "./show.js";
import { serveCommand } from "./serve.js";
import { runCommand } from "./run.js";
import { psCommand } from "./ps.js";
import { stopCommand } from "./stop.js";
import { templateCommand } from "./template.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  buildCommand,
  listCommand,
  showCommand,
  inspectCommand,
  cpCommand,
  rmCommand,
  pruneCommand,
  pullCommand,
  pushCommand,
  saveCommand,
  loadCommand,
  registryCommand,
  demoCommand,
  templateCommand,
  serveCommand,
  runCommand,
  psCommand,
  stopCommand,
];
