/**
 * The registry client: one object holding the HTTP agent, the tokens and the in-process download
 * sharing, so every pull and push of a process (CLI or runtime) goes through it.
 */
import type { ModelRef } from "../../core/reference.js";
import type { LocalStore } from "../../core/store.js";
import { discard, RegistryHttp, type HttpOptions } from "./http.js";
import { pull, type PullOptions, type PullResult, type PullSettings, type TransferOptions } from "./pull.js";
import { push, type PushOptions, type PushResult, type PushSettings } from "./push.js";
import { signModel, type SignResult } from "./sign.js";
import { pushSignature, type PushedSignature } from "./signatures.js";
import { wireRef } from "./names.js";
import type { SshKey } from "../protocol/keys.js";
import { SharedDownloads } from "./shared.js";

export interface RegistryClientOptions extends HttpOptions, PullSettings, PushSettings {}

export class RegistryClient {
  readonly http: RegistryHttp;
  private readonly shared = new SharedDownloads();
  private readonly opts: RegistryClientOptions;

  constructor(opts: RegistryClientOptions = {}) {
    this.opts = opts;
    this.http = new RegistryHttp(opts);
  }

  /** Pulls `name` into `store`: resumable, verified, manifest last. */
  pull(store: LocalStore, name: ModelRef | string, opts: PullOptions = {}): Promise<PullResult> {
    return pull({ http: this.http, shared: this.shared, settings: this.opts }, store, name, opts);
  }

  /** Pushes the model `name` from `store` to the registry its name points at. */
  push(store: LocalStore, name: ModelRef | string, opts: PushOptions & { sign?: SshKey } = {}): Promise<PushResult & { signature?: PushedSignature }> {
    const { sign, ...rest } = opts;
    if (!sign) return push({ http: this.http, settings: this.opts }, store, name, rest);
    // by digest, the signature, then the tag: what a registry that requires signatures accepts
    let signature: PushedSignature | undefined;
    const w = wireRef(name, opts);
    return push({ http: this.http, settings: this.opts }, store, name, {
      ...rest,
      beforeTag: async (m) => {
        signature = await pushSignature(this.http, store, w, m, sign, { signal: opts.signal });
      },
    }).then((r) => ({ ...r, signature }));
  }

  /** Signs `name` (as the registry has it, else the local image, pushed by digest and tagged after signing). */
  sign(store: LocalStore, name: ModelRef | string, key: SshKey, opts: TransferOptions = {}): Promise<SignResult> {
    return signModel(this.http, store, name, key, opts);
  }

  /** `GET /v2/` on the registry at `base` (`http(s)://host[:port]`), answering its challenge as any request does. */
  async ping(base: string, signal?: AbortSignal): Promise<void> {
    const res = await this.http.send({ method: "GET", url: `${base}/v2/`, signal });
    discard(res.body);
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

/** One pull with a client of its own (the runtime keeps a RegistryClient to share downloads). */
export async function pullModel(store: LocalStore, name: ModelRef | string, opts: TransferOptions & { client?: RegistryClient } & RegistryClientOptions = {}): Promise<PullResult> {
  const client = opts.client ?? new RegistryClient(opts);
  try {
    return await client.pull(store, name, opts);
  } finally {
    if (!opts.client) await client.close();
  }
}

/** One push with a client of its own. */
export async function pushModel(store: LocalStore, name: ModelRef | string, opts: TransferOptions & { client?: RegistryClient } & RegistryClientOptions = {}): Promise<PushResult> {
  const client = opts.client ?? new RegistryClient(opts);
  try {
    return await client.push(store, name, opts);
  } finally {
    if (!opts.client) await client.close();
  }
}
