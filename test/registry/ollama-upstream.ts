/**
 * A small registry that speaks Ollama's registry protocol exactly as compat.md §4 describes it, as an
 * upstream for the mirror tests: docker v2 manifests only (whatever the Accept header), blob HEAD with the
 * size, blob GET answered with 307 to a short-lived HMAC-signed URL on itself, which serves ranges without
 * Authorization. It counts the blob bodies it starts sending, can hold a blob halfway (`hold`) until the
 * test releases it, can lie about a blob's bytes, and can be taken down (503 to everything).
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export interface OllamaModel {
  manifest: Buffer;
  digest: string;
}

export class OllamaUpstream {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, Buffer>();
  /** the blobs each repository may read (those its images reference) */
  readonly repoBlobs = new Map<string, Set<string>>();
  /** blob bodies started, by digest (the signed URL's GETs) */
  readonly fetches = new Map<string, number>();
  /** digests whose body stops after half, until `release()` */
  readonly held = new Set<string>();
  /** digests served with their last byte flipped */
  readonly lying = new Set<string>();
  down = false;
  base = "";
  private releases: (() => void)[] = [];
  private readonly key = randomBytes(32);
  private server!: Server;
  /** resolves when a held body has sent its first half (one per held fetch) */
  private halfway: (() => void)[] = [];

  static async start(): Promise<OllamaUpstream> {
    const u = new OllamaUpstream();
    u.server = createServer((req, res) => u.handle(req, res).catch((e: unknown) => res.destroy(e as Error)));
    await new Promise<void>((r) => u.server.listen(0, "127.0.0.1", r));
    u.base = `http://127.0.0.1:${(u.server.address() as { port: number }).port}`;
    return u;
  }

  /** Adds a blob; returns its digest. */
  blob(data: Buffer): string {
    const d = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    this.blobs.set(d, data);
    return d;
  }

  /** An Ollama image (config, model, template) tagged `repo:tag`; the model layer is `model`. */
  image(repo: string, tag: string, model: Buffer): OllamaModel & { model: string } {
    const config = Buffer.from(JSON.stringify({ model_format: "gguf", model_family: "llama", architecture: "amd64", os: "linux" }));
    const template = Buffer.from("{{ .Prompt }}");
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", digest: this.blob(config), size: config.length },
      layers: [
        { mediaType: "application/vnd.ollama.image.model", digest: this.blob(model), size: model.length },
        { mediaType: "application/vnd.ollama.image.template", digest: this.blob(template), size: template.length },
      ],
    }));
    this.manifests.set(`${repo}:${tag}`, manifest);
    const readable = this.repoBlobs.get(repo) ?? new Set<string>();
    for (const l of [...(JSON.parse(manifest.toString()) as { layers: { digest: string }[] }).layers, JSON.parse(manifest.toString()).config as { digest: string }]) readable.add(l.digest);
    this.repoBlobs.set(repo, readable);
    const digest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;
    this.manifests.set(`${repo}@${digest}`, manifest);
    return { manifest, digest, model: `sha256:${createHash("sha256").update(model).digest("hex")}` };
  }

  /** Resolves once a held blob body has sent its first half. */
  reachedHalf(): Promise<void> {
    return new Promise((r) => this.halfway.push(r));
  }

  release(): void {
    this.held.clear();
    for (const r of this.releases.splice(0)) r();
  }

  fetchCount(digest: string): number {
    return this.fetches.get(digest) ?? 0;
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private sign(digest: string, expires: number): string {
    return createHmac("sha256", this.key).update(`${digest}\n${expires}`).digest("hex");
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, this.base);
    if (this.down) {
      res.writeHead(503).end();
      return;
    }
    if (url.pathname === "/v2/" || url.pathname === "/v2") {
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
      return;
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (m) {
      const ref = m[2]!;
      const bytes = this.manifests.get(ref.includes(":") ? `${m[1]}@${ref}` : `${m[1]}:${ref}`);
      if (!bytes) return this.notFound(res, "MANIFEST_UNKNOWN");
      res.writeHead(200, {
        "content-type": "application/vnd.docker.distribution.manifest.v2+json",
        "content-length": bytes.length,
        "docker-content-digest": `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
      });
      res.end(req.method === "HEAD" ? undefined : bytes);
      return;
    }
    const b = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (b) {
      const data = this.repoBlobs.get(b[1]!)?.has(b[2]!) ? this.blobs.get(b[2]!) : undefined;
      if (!data) return this.notFound(res, "BLOB_UNKNOWN");
      if (req.method === "HEAD") {
        res.writeHead(200, { "content-length": data.length, "docker-content-digest": b[2] }).end();
        return;
      }
      const expires = Date.now() + 60_000;
      res.writeHead(307, { location: `${this.base}/signed/${b[2]}?expires=${expires}&sig=${this.sign(b[2]!, expires)}`, "content-length": 0 }).end();
      return;
    }
    const s = /^\/signed\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (s) {
      const d = s[1]!;
      const expires = Number(url.searchParams.get("expires"));
      if (req.headers.authorization || url.searchParams.get("sig") !== this.sign(d, expires) || expires < Date.now()) {
        res.writeHead(403).end();
        return;
      }
      let data = this.blobs.get(d)!;
      if (this.lying.has(d)) {
        data = Buffer.from(data);
        data[data.length - 1]! ^= 0xff;
      }
      const range = /^bytes=(\d+)-(\d+)?$/.exec(req.headers.range ?? "");
      const start = range ? Number(range[1]) : 0;
      const end = range?.[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      this.fetches.set(d, this.fetchCount(d) + 1);
      res.writeHead(range ? 206 : 200, {
        "content-length": end - start + 1,
        ...(range ? { "content-range": `bytes ${start}-${end}/${data.length}` } : {}),
      });
      const body = data.subarray(start, end + 1);
      if (this.held.has(d)) {
        const half = Math.floor(body.length / 2);
        res.write(body.subarray(0, half));
        for (const r of this.halfway.splice(0)) r();
        await new Promise<void>((r) => this.releases.push(r));
        res.end(body.subarray(half));
        return;
      }
      res.end(body);
      return;
    }
    this.notFound(res, "NAME_UNKNOWN");
  }

  private notFound(res: ServerResponse, code: string): void {
    const body = JSON.stringify({ errors: [{ code, message: "not found" }] });
    res.writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
  }
}
