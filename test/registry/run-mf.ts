/** Runs the `mf` binary the way peers.ts's mfCommand starts it (source through tsx, or MF_TEST_CLI), for CLI tests of the registry. */
import { mf, type MfResult } from "../helpers/mf.js";
import { mfCommand } from "./peers.js";

export type MfRun = MfResult;

/** `mf ARGS` with `env` over a copy of this process's environment (MF_DEBUG and MF_KEY unset unless given). */
export function runMf(args: string[], env: Record<string, string> = {}, input = ""): Promise<MfRun> {
  return mf(args, { env, input, command: mfCommand() });
}
