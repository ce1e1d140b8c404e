/** Every command of the `mf` binary, one file each. Add a command by adding its import here. */
import type { CommandModule } from "yargs";
import { buildCommand } from "./build.js";
import { cpCommand } from "./cp.js";
import { demoCommand } from "./demo.js";
import { inspectCommand } from "./inspect.js";
import { listCommand } from "./list.js";
import { pruneCommand } from "./prune.js";
import { pullCommand } from "./pull.js";
import { pushCommand } from "./push.js";
import { registryCommand } from "./registry.js";
import { rmCommand } from "./rm.js";
import { showCommand } from "./show.js";
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
  registryCommand,
  demoCommand,
  templateCommand,
];
