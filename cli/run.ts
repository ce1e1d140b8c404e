/** Top-level error handling for the CLI: an MfError prints its message (never a stack) and exits 1 (or the code the command set). */
import { isMfError } from "../core/errors.js";

export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const rendered = typeof (e as { render?: unknown })?.render === "function" ? (e as { render(): string }).render() : undefined;
    if (rendered) {
      process.stderr.write(`${rendered}\n`);
    } else if (isMfError(e)) {
      process.stderr.write(`mf: ${e.message}\n`);
      if (process.env.MF_DEBUG && e.cause) process.stderr.write(`${String((e.cause as Error).stack ?? e.cause)}\n`);
    } else {
      // not one of ours (a file system error, say): the message, and the stack only when debugging
      process.stderr.write(`mf: ${(e as Error)?.message ?? String(e)}\n`);
      if (process.env.MF_DEBUG) process.stderr.write(`${(e as Error)?.stack ?? ""}\n`);
    }
    // a command may have chosen its failure code (130: interrupted by Ctrl-C)
    if (!process.exitCode) process.exitCode = 1;
  }
}
