/**
 * Upload session locations kept on disk (`<store>/uploads/<sha256 of registry, repository, digest>.json`),
 * so `mf push` run again asks the registry where the blob stands instead of starting over.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface SavedSession {
  base: string;
  name: string;
  digest: string;
  location: string;
  /** bytes the registry had acknowledged when this was written */
  offset: number;
  updated: string;
}

export class UploadSessions {
  readonly dir: string;

  constructor(storeRoot: string) {
    this.dir = join(storeRoot, "uploads");
  }

  private path(base: string, name: string, digest: string): string {
    const key = createHash("sha256").update(`${base}\n${name}\n${digest}`).digest("hex");
    return join(this.dir, `${key}.json`);
  }

  async get(base: string, name: string, digest: string): Promise<SavedSession | undefined> {
    try {
      const s = JSON.parse(await readFile(this.path(base, name, digest), "utf8")) as SavedSession;
      return s.base === base && s.name === name && s.digest === digest && typeof s.location === "string" ? s : undefined;
    } catch {
      return undefined;
    }
  }

  async set(base: string, name: string, digest: string, location: string, offset: number): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const p = this.path(base, name, digest);
    const tmp = `${p}.${randomBytes(6).toString("hex")}.tmp`;
    const s: SavedSession = { base, name, digest, location, offset, updated: new Date().toISOString() };
    await writeFile(tmp, JSON.stringify(s));
    await rename(tmp, p);
  }

  async delete(base: string, name: string, digest: string): Promise<void> {
    await rm(this.path(base, name, digest), { force: true });
  }

  async list(): Promise<SavedSession[]> {
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: SavedSession[] = [];
    for (const n of names.filter((x) => x.endsWith(".json"))) {
      try {
        out.push(JSON.parse(await readFile(join(this.dir, n), "utf8")) as SavedSession);
      } catch {
        /* a torn file is ignored */
      }
    }
    return out;
  }
}
