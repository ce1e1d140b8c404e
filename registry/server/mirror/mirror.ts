/**
 * The pull-through mirror: names under a mirrored namespace (`ollama/library/llama3` for `--mirror
 * ollama=https://registry.ollama.ai`) that the registry lacks are fetched from upstream (`library/llama3`)
 * on the first pull and served locally afterwards.
 *
 * - Manifests are read whole (they are small), verified against their digest, stored (blob, revision,
 *   tag: the tag last, so a crash never leaves a tag without its manifest). A tag is re-checked upstream
 *   when it is older than the TTL (the tag object's modification time, touched at each check that finds
 *   it unchanged, so every replica on the same storage sees the same age); when upstream cannot answer,
 *   the cached manifest is served.
 * - Blobs: one fetch per digest at a time in this process (arrival.ts), served while it arrives.
 * - Pushes into a mirrored namespace are refused; names outside the allow-list are unknown.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDigest, type ParsedDigest } from "../../../core/digest.js";
import { AuthError, MfError, RegistryError } from "../../../core/errors.js";
import { manifestFacts } from "../manifest-refs.js";
import type { ArrivingBlob, MirrorHook } from "../mirror-hook.js";
import { RepoStore } from "../repo-store.js";
import type { StorageDriver } from "../storage/driver.js";
import * as L from "../storage/layout.js";
import { digestString, type ManifestRef } from "../validate.js";
import { Arrival } from "./arrival.js";
import { allowPattern, checkMirror, type MirrorSpec } from "./config.js";
import { Upstream, UpstreamUnavailable, type UpstreamManifest } from "./upstream.js";

export interface MirrorOptions {
  storage: StorageDriver;
  mirrors: MirrorSpec[];
  /** a tag older than this is re-checked upstream (default 10 min) */
  tagTtlMs?: number;
  /** where blobs are spooled while they arrive (default: a new directory under the system's temp dir) */
  spoolDir?: string;
  /** the largest manifest taken from upstream (default 8 MiB) */
  manifestMaxBytes?: number;
  /** retries of a failed upstream request (default 2) */
  retries?: number;
  clock?: () => number;
  /** one line per noteworthy event (an upstream that failed, a cached copy served); never carries credentials */
  log?: (line: string) => void;
}

interface Route {
  spec: MirrorSpec;
  upstream: Upstream;
  /** what upstream names start with (the upstream URL's path), or "" */
  prefix: string;
  allow?: RegExp[];
}

export class Mirror implements MirrorHook {
  private readonly store: RepoStore;
  private readonly routes = new Map<string, Route>();
  private readonly inflight = new Map<string, { promise: Promise<Arrival>; names: Set<string>; arrival?: Arrival }>();
  private readonly tagTtlMs: number;
  private readonly maxBytes: number;
  private readonly clock: () => number;
  private readonly log: (line: string) => void;
  private spoolDir: Promise<string> | undefined;
  private readonly ownSpool: boolean;
  private readonly fills = new Set<Promise<void>>();
  /** aborts the fetches in progress when the server closes (a multi-GB fetch must not hold a shutdown) */
  private readonly closing = new AbortController();

  constructor(private readonly opts: MirrorOptions) {
    this.store = new RepoStore(opts.storage);
    for (const raw of opts.mirrors) {
      const spec = checkMirror(raw);
      if (this.routes.has(spec.namespace)) throw new MfError("BAD_REQUEST", `two mirrors for the namespace "${spec.namespace}"`);
      const u = new URL(spec.upstream);
      this.routes.set(spec.namespace, {
        spec,
        prefix: u.pathname.replace(/^\/+|\/+$/g, ""),
        upstream: new Upstream({ base: u.origin, credentials: spec.credentials, retries: opts.retries }),
        allow: spec.allow?.map(allowPattern),
      });
    }
    this.tagTtlMs = opts.tagTtlMs ?? 10 * 60_000;
    this.maxBytes = opts.manifestMaxBytes ?? 8 << 20;
    this.clock = opts.clock ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.ownSpool = opts.spoolDir === undefined;
    if (opts.spoolDir !== undefined) this.spoolDir = Promise.resolve(opts.spoolDir);
  }

  /** What the mirror serves, for the start-up line: `ollama/ ← https://registry.ollama.ai`. */
  describe(): string[] {
    return [...this.routes.values()].map((r) => `${r.spec.namespace}/ ← ${r.spec.upstream}${r.allow ? ` (only ${r.spec.allow!.join(", ")})` : ""}`);
  }

  covers(name: string): boolean {
    const slash = name.indexOf("/");
    return slash > 0 && this.routes.has(name.slice(0, slash));
  }

  refuseWrite(name: string): void {
    const r = this.routes.get(name.slice(0, name.indexOf("/")));
    if (r && this.covers(name)) {
      throw new AuthError("DENIED", `${name} is in the namespace "${r.spec.namespace}", a pull-through mirror of ${r.spec.upstream}: pushes are refused`);
    }
  }

  /** The route and upstream repository of a covered name; NAME_UNKNOWN outside the allow-list. */
  private route(name: string): { r: Route; repo: string } {
    const slash = name.indexOf("/");
    const r = this.routes.get(name.slice(0, slash))!;
    if (r.allow && !r.allow.some((re) => re.test(name))) {
      throw new RegistryError("NAME_UNKNOWN", `${name} is not in the allow-list of the mirror of ${r.spec.upstream}`, { detail: { name } });
    }
    return { r, repo: r.prefix ? `${r.prefix}/${name.slice(slash + 1)}` : name.slice(slash + 1) };
  }

  async manifest(name: string, ref: ManifestRef): Promise<void> {
    const { r, repo } = this.route(name);
    if (ref.kind === "digest") {
      if (await this.store.revision(name, ref.digest)) return;
      await this.keep(name, await r.upstream.manifest(repo, ref.text, this.maxBytes));
      return;
    }
    const tagPath = L.tagPath(name, ref.tag);
    const stat = await this.opts.storage.stat(tagPath);
    const cached = stat ? await this.store.tagTarget(name, ref.tag) : null;
    const usable = cached && (await this.store.revision(name, cached)) ? cached : null;
    if (usable && this.clock() - stat!.modifiedMs < this.tagTtlMs) return;
    let fetched: UpstreamManifest;
    try {
      fetched = await r.upstream.manifest(repo, ref.tag, this.maxBytes);
    } catch (e) {
      if (usable && e instanceof UpstreamUnavailable) {
        this.log(`mirror: serving the cached ${name}:${ref.tag} (${digestString(usable)}): ${e.message}`);
        return;
      }
      throw e;
    }
    if (usable && digestString(usable) === fetched.digest) {
      await this.opts.storage.touch(tagPath).catch(() => {});
      return;
    }
    await this.keep(name, fetched, ref.tag);
    if (usable) this.log(`mirror: ${name}:${ref.tag} moved upstream from ${digestString(usable)} to ${fetched.digest}`);
  }

  /** Stores an upstream manifest: its bytes, its revision, a referrer entry, then the tag. */
  private async keep(name: string, m: UpstreamManifest, tag?: string): Promise<void> {
    let facts;
    try {
      facts = manifestFacts(m.bytes, m.contentType);
    } catch (e) {
      throw new RegistryError("UNKNOWN", `upstream sent an unusable manifest for ${name}: ${(e as Error).message}`, { cause: e });
    }
    const d = parseDigest(m.digest)!;
    await this.store.putSmallBlob(d, m.bytes);
    await this.store.putRevision(name, d, { mediaType: facts.mediaType, size: m.bytes.length });
    if (facts.subject) {
      await this.store.putReferrer(name, facts.subject, d, {
        mediaType: facts.mediaType,
        digest: m.digest,
        size: m.bytes.length,
        ...(facts.artifactType !== undefined ? { artifactType: facts.artifactType } : {}),
        ...(facts.annotations !== undefined ? { annotations: facts.annotations } : {}),
      });
    }
    if (tag) await this.store.putTag(name, tag, d);
  }

  async blob(name: string, digest: ParsedDigest): Promise<ArrivingBlob | null> {
    const { r, repo } = this.route(name);
    const text = digestString(digest);
    let entry = this.live(text);
    if (!entry) {
      if (await this.store.blobInfo(digest)) {
        // stored for another repository: this one gets it only if upstream serves it here too
        if (!(await r.upstream.hasBlob(repo, text))) throw new RegistryError("BLOB_UNKNOWN", `blob ${text} unknown to ${name}`, { detail: { digest: text } });
        await this.store.linkBlob(name, digest);
        return null;
      }
      entry = this.live(text);
    }
    if (!entry) {
      const names = new Set([name]);
      const e: { promise: Promise<Arrival>; names: Set<string>; arrival?: Arrival } = { names, promise: this.start(r, repo, digest, names) };
      entry = e;
      this.inflight.set(text, e);
      e.promise.then(
        (a) => (e.arrival = a),
        () => {
          if (this.inflight.get(text) === e) this.inflight.delete(text);
        },
      );
    } else if (!entry.names.has(name)) {
      if (!(await r.upstream.hasBlob(repo, text))) throw new RegistryError("BLOB_UNKNOWN", `blob ${text} unknown to ${name}`, { detail: { digest: text } });
      entry.names.add(name);
      if (this.inflight.get(text) !== entry && entry.arrival && !entry.arrival.failed) await this.store.linkBlob(name, digest); // it was stored meanwhile
    }
    return entry.promise;
  }

  arriving(digest: ParsedDigest): ArrivingBlob | null {
    return this.live(digestString(digest))?.arrival ?? null;
  }

  /** The fetch in progress for a digest, unless it has already failed (a new request starts another). */
  private live(text: string): { promise: Promise<Arrival>; names: Set<string>; arrival?: Arrival } | undefined {
    const e = this.inflight.get(text);
    return e?.arrival?.failed ? undefined : e;
  }

  /** Opens the upstream blob and starts filling the store with it; resolves once its size is known. */
  private async start(r: Route, repo: string, digest: ParsedDigest, names: Set<string>): Promise<Arrival> {
    const text = digestString(digest);
    const { size, body } = await r.upstream.blob(repo, text, this.closing.signal);
    let arrival: Arrival;
    try {
      arrival = await Arrival.create(digest, size, await this.spool());
    } catch (e) {
      body.destroy();
      throw e;
    }
    const fill = arrival
      .fill(body, this.opts.storage, async () => {
        for (const n of names) await this.store.linkBlob(n, digest);
      }, this.closing.signal)
      .catch((e: unknown) => this.log(`mirror: fetching ${text} from ${r.spec.upstream} failed: ${(e as Error).message}`))
      .finally(() => {
        const e = this.inflight.get(text);
        if (e?.names === names) this.inflight.delete(text);
        this.fills.delete(fill);
      });
    this.fills.add(fill);
    return arrival;
  }

  private spool(): Promise<string> {
    this.spoolDir ??= mkdtemp(join(tmpdir(), "mf-mirror-spool-"));
    return this.spoolDir;
  }

  async close(): Promise<void> {
    this.closing.abort(new RegistryError("SERVICE_UNAVAILABLE", "the registry is shutting down"));
    await Promise.allSettled([...this.fills]);
    await Promise.allSettled([...this.routes.values()].map((r) => r.upstream.close()));
    if (this.ownSpool && this.spoolDir) await rm(await this.spoolDir, { recursive: true, force: true });
  }
}
