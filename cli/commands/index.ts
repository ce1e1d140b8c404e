/** Every command of the `mf` binary, one file each. Add a command by adding its import here. */
import type { CommandModule } from "yargs";
import { templateCommand } from "./template.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [templateCommand];
