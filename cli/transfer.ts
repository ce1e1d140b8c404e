/**
 * What `mf pull`, `mf push` and `mf build` share: one registry client per command, progress rendering,
 * and Ctrl-C turned into an abort that leaves resumable state and says how to resume.
 */
import { MfError } from "../core/errors.js";
import { pullConverter } from "../builder/formats/index.js";
import { RegistryClient, type RegistryClientOptions } from "../registry/client/index.js";
import { cliAuthenticator } from "./credentials.js";
import { progressRenderer } from "./progress.js";

/**
 * Runs `fn` with a client, a progress sink and a signal that Ctrl-C fires. On Ctrl-C the error says the
 * transfer can be resumed with `resume`.
 */
export async function withTransfer<T>(
  resume: string,
  fn: (t: { client: RegistryClient; signal: AbortSignal; onProgress: ReturnType<typeof progressRenderer> }) => Promise<T>,
  opts: RegistryClientOptions & { quiet?: boolean; key?: string } = {},
): Promise<T> {
  // registries that ask for auth get a token signed with the ssh key (--key / MF_KEY) or a stored API key;
  // a pulled ModelPack, Docker Model Runner or KitOps image is stored as an Ollama image
  const client = new RegistryClient({ authenticate: cliAuthenticator(opts.key), convert: pullConverter, ...opts });
  const ctl = new AbortController();
  const onSigint = () => ctl.abort(new MfError("INTERNAL", "interrupted"));
  process.once("SIGINT", onSigint);
  const progress = progressRenderer();
  const sink = Object.assign((e: Parameters<typeof progress>[0]) => (opts.quiet ? undefined : progress(e)), { done: progress.done });
  try {
    return await fn({ client, signal: ctl.signal, onProgress: sink });
  } catch (e) {
    if (ctl.signal.aborted) {
      progress.done();
      process.exitCode = 130;
      throw new MfError("INTERNAL", `interrupted; what was transferred is kept: run \`${resume}\` again to resume`);
    }
    throw e;
  } finally {
    progress.done();
    process.off("SIGINT", onSigint);
    await client.close();
  }
}

/** `--chunk-size` values such as 64M, 512K, 1G or plain bytes. */
export function parseByteSize(s: string | number | undefined): number | undefined {
  if (s === undefined) return undefined;
  if (typeof s === "number") return s;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?)?b?$/i.exec(s.trim());
  if (!m) throw new MfError("BAD_REQUEST", `invalid size "${s}" (examples: 65536, 512K, 64M, 1G)`);
  const unit = (m[2] ?? "").toLowerCase().replace("i", "");
  const mult = unit === "k" ? 1024 : unit === "m" ? 1024 ** 2 : unit === "g" ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * mult);
}
