/**
 * Chevrotain, loaded from the single-file ESM bundle its package ships (`lib/chevrotain.mjs`) instead of
 * its package entry (`lib/src/api.js`), which drags several hundred lodash-es modules through node's ESM
 * loader: ~350 ms of every `mf build` (and every other command that parses a Modelfile) against ~25 ms.
 * The package's `exports` map does not list the bundle, so its path is derived from the resolved entry;
 * should that ever fail, the entry itself is used. Types come from the package as usual.
 */
import type * as Chevrotain from "chevrotain";

async function load(): Promise<typeof Chevrotain> {
  try {
    return (await import(new URL("../chevrotain.mjs", import.meta.resolve("chevrotain")).href)) as typeof Chevrotain;
  } catch {
    return import("chevrotain");
  }
}

const chevrotain = await load();

export const { createToken, Lexer, CstParser } = chevrotain;
