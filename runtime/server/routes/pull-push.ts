/**
 * `POST /api/pull` and `POST /api/push`: the registry client's progress events streamed as NDJSON
 * (`pulling manifest`, `pulling <12 hex>` with digest/total/completed, `verifying sha256 digest`,
 * `writing manifest`, `success`), or only the last one with `stream: false`. One RegistryClient serves
 * every request, so concurrent pulls of the same model share one download. A closed connection aborts
 * this request's share of the transfer and leaves resumable state.
 */
import type { FastifyInstance } from "fastify";
import { RuntimeError } from "../../../core/errors.js";
import type { ProgressEvent } from "../../../core/progress.js";
import { tryParseRef, type ModelRef } from "../../../core/reference.js";
import type { LocalStore } from "../../../core/store.js";
import type { RegistryClient, VerifyPolicy } from "../../../registry/client/index.js";
import { clientSignal, streamOrLast } from "../http.js";

interface TransferBody {
  model?: string;
  name?: string;
  insecure?: boolean;
  stream?: boolean;
}

const transferSchema = {
  type: "object",
  properties: {
    model: { type: "string" },
    name: { type: "string" },
    insecure: { type: "boolean" },
    stream: { type: "boolean" },
    username: { type: "string" },
    password: { type: "string" },
  },
} as const;

/**
 * The `registryRoutes` hook of createRuntimeServer, backed by `client`. `verifyPolicy` names the signature
 * policy a pull of a name runs under (the config file's verify rules), if any.
 */
export function pullPushRoutes(client: RegistryClient, verifyPolicy?: (ref: ModelRef) => VerifyPolicy | undefined): (app: FastifyInstance, deps: { store: LocalStore }) => void {
  return (app, { store }) => {
    for (const op of ["pull", "push"] as const) {
      app.post<{ Body: TransferBody }>(`/api/${op}`, { schema: { body: transferSchema } }, async (req, reply) => {
        const b = req.body;
        const name = b.model ?? b.name ?? "";
        if (!name) throw new RuntimeError("BAD_REQUEST", "model is required");
        const ref = tryParseRef(name);
        if (!ref) throw new RuntimeError("BAD_REQUEST", `invalid model name "${name}"`);
        const signal = clientSignal(req, reply);
        const last = await streamOrLast<ProgressEvent>(reply, b.stream !== false, async (emit) => {
          const opts = { insecure: b.insecure === true, signal, onProgress: emit };
          if (op === "pull") await client.pull(store, ref, { ...opts, verify: verifyPolicy?.(ref) });
          else await client.push(store, ref, opts);
        });
        return last ?? reply;
      });
    }
  };
}
