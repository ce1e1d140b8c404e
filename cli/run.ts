/**
 * Top-level error handling for the CLI: an MfError prints its message (never a stack) and exits 1 (or the
 * code the command set); a reader that closes stdout early (`mf … | head`) ends mf quietly.
 */
import { isMfError } from "../core/errors.js";

/** Exit status of a writer whose reader went away: what a shell shows for a tool killed by SIGPIPE. */
export const CLOSED_PIPE_EXIT = 141;

/**
 * Node ignores SIGPIPE, so a write to a closed pipe fails with EPIPE, and an unhandled stream error
 * crashes with a stack trace. A Unix tool whose reader has gone stops at once and says nothing (there is
 * no one left to tell), so does mf, for stdout and stderr alike.
 */
export function endQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(CLOSED_PIPE_EXIT);
      throw e;
    });
  }
}

export async function runMain(main: () => Promise<void>): Promise<void> {
  endQuietlyOnClosedPipe();
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
