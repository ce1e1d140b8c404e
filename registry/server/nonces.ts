/**
 * Token-request nonces already seen, kept in registry storage so that every replica on the same storage
 * refuses a replay. A signed request is only acceptable within ±window of its `ts`, so a nonce is filed
 * under its request's time bucket (the replay carries the same signed `ts`) and whole buckets older
 * than the window are dropped. A claim is one exclusive create where the driver has one (S3: a PUT with
 * If-None-Match, so two replicas racing on one nonce cannot both win); concurrent claims inside one
 * process are also serialised in memory.
 */
import { createHash } from "node:crypto";
import type { StorageDriver } from "./storage/driver.js";
import * as L from "./storage/layout.js";

const BUCKET_S = 600;

export class NonceStore {
  private readonly storage: StorageDriver;
  private readonly windowS: number;
  private readonly clock: () => number;
  private readonly pending = new Set<string>();
  private lastSweepMs = 0;

  constructor(storage: StorageDriver, windowS: number, clock: () => number) {
    this.storage = storage;
    this.windowS = windowS;
    this.clock = clock;
  }

  /** True the first time a nonce is claimed (for a request signed at `tsS`), false for a replay. */
  async claim(nonce: string, tsS: number): Promise<boolean> {
    const bucket = Math.floor(tsS / BUCKET_S);
    const hash = createHash("sha256").update(nonce).digest("hex");
    const path = L.noncePath(bucket, hash);
    if (this.pending.has(path)) return false;
    this.pending.add(path);
    try {
      const mark = Buffer.from(String(tsS));
      if (this.storage.putContentIfAbsent) {
        if (!(await this.storage.putContentIfAbsent(path, mark))) return false;
      } else {
        if (await this.storage.stat(path)) return false;
        await this.storage.putContent(path, mark);
      }
    } finally {
      this.pending.delete(path);
    }
    void this.sweep().catch(() => {});
    return true;
  }

  /** Removes buckets no acceptable request can fall into any more (at most once a minute). */
  async sweep(force = false): Promise<number> {
    const now = this.clock();
    if (!force && now - this.lastSweepMs < 60_000) return 0;
    this.lastSweepMs = now;
    const oldest = Math.floor((now / 1000 - this.windowS) / BUCKET_S) - 1;
    let removed = 0;
    for (const name of await this.storage.list(L.NONCES_ROOT)) {
      if (/^\d+$/.test(name) && Number(name) < oldest) {
        await this.storage.delete(L.nonceBucketDir(Number(name)));
        removed++;
      }
    }
    return removed;
  }
}
