/** What every command needs, resolved once from flags and the environment (cli/ and core/config only). */
import { homedir } from "node:os";
import { type Config, resolveConfig } from "../core/config.js";
import { LocalStore } from "../core/store.js";

export interface CliContext {
  config: Config;
  store: LocalStore;
  homeDir: string;
}

export function cliContext(flags: { models?: string; verbose?: boolean } = {}): CliContext {
  const config = resolveConfig({ flags: { models: flags.models, verbose: flags.verbose } });
  return { config, store: new LocalStore(config.models), homeDir: homedir() };
}

export function writeJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + "\n");
}
