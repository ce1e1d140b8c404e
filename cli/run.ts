/** Top-level error handling for the CLI: an MfError prints its message (never a stack) and exits 1. */
import { isMfError } from "../core/errors.js";

export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (isMfError(e)) {
      process.stderr.write(`mf: ${e.message}\n`);
      if (process.env.MF_DEBUG && e.cause) process.stderr.write(`${String((e.cause as Error).stack ?? e.cause)}\n`);
    } else {
      process.stderr.write(`mf: ${(e as Error)?.stack ?? String(e)}\n`);
    }
    process.exitCode = 1;
  }
}
