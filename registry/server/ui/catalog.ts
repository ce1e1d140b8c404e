/**
 * What the page lists, read through the registry's own RepoStore (so it works on every storage driver):
 * repositories with their tag count, size and last push, a repository's tags, and a manifest with its
 * layers and referrers. Manifests are immutable by digest, so what is read of one is kept in a small
 * bounded cache.
 */
import { parseDigest, type ParsedDigest } from "../../../core/digest.js";
import { MediaType } from "../../../core/mediatypes.js";
import type { RepoStore } from "../repo-store.js";
import { digestString } from "../validate.js";

/** A descriptor as the page shows it. */
export interface Layer {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** What a stored manifest says, parsed leniently (any OCI or Docker manifest, index or artifact). */
export interface ManifestView {
  digest: string;
  mediaType: string;
  /** the manifest's own bytes */
  size: number;
  artifactType?: string;
  config?: Layer;
  layers: Layer[];
  /** child manifests of an index */
  manifests: Layer[];
  subject?: Layer;
  annotations?: Record<string, string>;
  /** the manifest as JSON text (pretty-printed) */
  text: string;
  /** an Ollama model: its config is Docker's container config and a layer holds the weights */
  isModel: boolean;
}

export interface RepositorySummary {
  name: string;
  tags: number;
  /** bytes of every blob its manifests reference (and the manifests), each counted once */
  size: number;
  /** ms since the epoch, or null when it has no tags */
  lastPush: number | null;
}

export interface TagView {
  tag: string;
  digest: string;
  mediaType: string;
  artifactType?: string;
  /** the manifest and everything it references, each blob once */
  size: number;
  /** from the push record, else the time the tag was last written */
  pushedAt: number | null;
  /** `anonymous`, `key:SHA256:…`, `apikey:<name>`; null when not recorded */
  pusher: string | null;
  isModel: boolean;
}

/** Manifests the page reads are capped at this many bytes (the registry refuses larger ones by default). */
const MANIFEST_CAP = 8 << 20;
const CACHE_ENTRIES = 512;

function descriptor(v: unknown): Layer | undefined {
  const x = v as Record<string, unknown> | null;
  if (!x || typeof x !== "object" || typeof x.digest !== "string" || !parseDigest(x.digest)) return undefined;
  const out: Layer = {
    mediaType: typeof x.mediaType === "string" ? x.mediaType.slice(0, 256) : "",
    digest: x.digest,
    size: typeof x.size === "number" && Number.isSafeInteger(x.size) && x.size >= 0 ? x.size : 0,
  };
  if (typeof x.artifactType === "string") out.artifactType = x.artifactType.slice(0, 256);
  if (x.annotations && typeof x.annotations === "object") out.annotations = stringMap(x.annotations);
  const p = x.platform as Record<string, unknown> | undefined;
  if (p && typeof p === "object") {
    out.platform = {};
    for (const k of ["os", "architecture", "variant"] as const) if (typeof p[k] === "string") out.platform[k] = (p[k] as string).slice(0, 64);
  }
  return out;
}

function stringMap(v: object): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v).slice(0, 64)) if (typeof x === "string") out[k.slice(0, 256)] = x.slice(0, 4096);
  return out;
}

export function parseManifestView(digest: string, mediaTypeStored: string, bytes: Buffer): ManifestView {
  let doc: Record<string, unknown> = {};
  let text = bytes.toString("utf8");
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) doc = parsed as Record<string, unknown>;
    text = JSON.stringify(parsed, null, 2);
  } catch {
    // shown as stored
  }
  const list = (v: unknown): Layer[] => (Array.isArray(v) ? v.map(descriptor).filter((d): d is Layer => d !== undefined) : []);
  const config = descriptor(doc.config);
  const layers = list(doc.layers ?? doc.blobs);
  const view: ManifestView = {
    digest,
    mediaType: typeof doc.mediaType === "string" ? doc.mediaType : mediaTypeStored,
    size: bytes.length,
    layers,
    manifests: list(doc.manifests),
    text,
    isModel: config?.mediaType === MediaType.dockerConfig && layers.some((l) => l.mediaType === MediaType.model),
  };
  if (config) view.config = config;
  const subject = descriptor(doc.subject);
  if (subject) view.subject = subject;
  const artifactType = typeof doc.artifactType === "string" ? doc.artifactType : undefined;
  if (artifactType) view.artifactType = artifactType;
  else if (config && config.mediaType !== MediaType.ociEmpty && !view.isModel && config.mediaType !== MediaType.ociConfig && config.mediaType !== MediaType.dockerConfig) {
    view.artifactType = config.mediaType; // OCI 1.1: an artifact without artifactType is typed by its config
  }
  if (doc.annotations && typeof doc.annotations === "object") view.annotations = stringMap(doc.annotations);
  return view;
}

export class Catalog {
  private readonly views = new Map<string, ManifestView>();

  constructor(private readonly store: RepoStore) {}

  /** The manifest `d` of repository `name`, or null when the repository does not hold it. */
  async manifest(name: string, d: ParsedDigest): Promise<ManifestView | null> {
    const rev = await this.store.revision(name, d);
    if (!rev) return null;
    const key = digestString(d);
    const cached = this.views.get(key);
    if (cached) return cached;
    const bytes = await this.store.manifestBytes(d, MANIFEST_CAP).catch(() => null);
    if (!bytes) return null;
    const view = parseManifestView(key, rev.mediaType, bytes);
    if (this.views.size >= CACHE_ENTRIES) this.views.delete(this.views.keys().next().value!);
    this.views.set(key, view);
    return view;
  }

  /** The blobs (digest → size) `view` stands for: itself, its config, layers, and an index's children's. */
  private async blobsOf(name: string, view: ManifestView, into: Map<string, number>, depth = 0): Promise<void> {
    into.set(view.digest, view.size);
    if (view.config) into.set(view.config.digest, view.config.size);
    for (const l of view.layers) into.set(l.digest, l.size);
    if (depth > 0) return;
    for (const m of view.manifests) {
      const d = parseDigest(m.digest);
      const child = d ? await this.manifest(name, d) : null;
      if (child) await this.blobsOf(name, child, into, depth + 1);
      else into.set(m.digest, m.size);
    }
  }

  /** The size of a manifest and everything it references, each blob once. */
  async sizeOf(name: string, view: ManifestView): Promise<number> {
    const blobs = new Map<string, number>();
    await this.blobsOf(name, view, blobs);
    return sum(blobs);
  }

  async tags(name: string): Promise<TagView[]> {
    const out: TagView[] = [];
    for (const tag of await this.store.tags(name)) {
      const d = await this.store.tagTarget(name, tag);
      const view = d ? await this.manifest(name, d) : null;
      if (!d || !view) continue;
      const record = await this.store.pushRecord(name, tag, d);
      // a tag written before push records existed: its last write is its last push, by nobody recorded
      const pushedAt = record?.pushedAt ?? (await this.store.tagModified(name, tag));
      out.push({
        tag,
        digest: view.digest,
        mediaType: view.mediaType,
        ...(view.artifactType ? { artifactType: view.artifactType } : {}),
        size: await this.sizeOf(name, view),
        pushedAt,
        pusher: record?.pusher ?? null,
        isModel: view.isModel,
      });
    }
    return out;
  }

  /** Tag count, size of everything its manifests reference (each blob once), last push. */
  async summary(name: string): Promise<RepositorySummary> {
    const blobs = new Map<string, number>();
    for (const d of await this.store.revisions(name)) {
      const view = await this.manifest(name, d);
      if (view) await this.blobsOf(name, view, blobs);
    }
    const tags = await this.tags(name);
    const pushes = tags.map((t) => t.pushedAt).filter((t): t is number => t !== null);
    return { name, tags: tags.length, size: sum(blobs), lastPush: pushes.length ? Math.max(...pushes) : null };
  }
}

function sum(blobs: Map<string, number>): number {
  let n = 0;
  for (const v of blobs.values()) n += v;
  return n;
}
