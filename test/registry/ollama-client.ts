/**
 * Stock Ollama's pull of one blob (compat.md §4), done as Ollama does it: HEAD for the size, a GET that
 * must answer 307 with an absolute Location, then 16 parallel Range GETs on that Location without
 * Authorization. Shared by the protocol test and the mirror tests.
 */
import { strict as assert } from "node:assert";

export interface OllamaBlobPull {
  size: number;
  /** the Location the GET redirected to */
  direct: string;
  /** the 16 ranges, each `[first, last]`, in order */
  ranges: [number, number][];
  /** one fetch per range: resolves with its bytes */
  pieces: Promise<Buffer>[];
}

/** HEAD, the 307, then starts the 16 ranged GETs; the caller awaits `pieces`. */
export async function ollamaStartBlobPull(base: string, repo: string, digest: string, headers: Record<string, string> = {}): Promise<OllamaBlobPull> {
  const head = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { method: "HEAD", headers });
  assert.equal(head.status, 200);
  const size = Number(head.headers.get("content-length"));
  const get = await fetch(`${base}/v2/${repo}/blobs/${digest}`, { headers, redirect: "manual" });
  assert.equal(get.status, 307, "a 200 breaks stock Ollama");
  await get.arrayBuffer();
  const direct = get.headers.get("location");
  assert.ok(direct && /^http:\/\/127\.0\.0\.1:\d+\//.test(direct), `absolute Location, got ${direct}`);
  const parts = 16;
  const step = Math.ceil(size / parts);
  const ranges: [number, number][] = [];
  for (let i = 0; i < parts; i++) {
    const a = i * step;
    const b = Math.min(size, a + step) - 1;
    if (a <= b) ranges.push([a, b]);
  }
  const pieces = ranges.map(async ([a, b]) => {
    const res = await fetch(direct, { headers: { range: `bytes=${a}-${b}` } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), `bytes ${a}-${b}/${size}`);
    return Buffer.from(await res.arrayBuffer());
  });
  for (const p of pieces) p.catch(() => {});
  return { size, direct, ranges, pieces };
}

/** The whole blob pulled as stock Ollama does. */
export async function ollamaPullBlob(base: string, repo: string, digest: string, headers: Record<string, string> = {}): Promise<Buffer> {
  const pull = await ollamaStartBlobPull(base, repo, digest, headers);
  return Buffer.concat(await Promise.all(pull.pieces));
}
