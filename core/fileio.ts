/** Small file-handle helpers shared by the registry's filesystem driver and the pull client. */
import type { FileHandle } from "node:fs/promises";

/** Writes every byte of `chunks` at `position` with writev, finishing short writes. */
export async function writeAllv(fh: FileHandle, chunks: Buffer[], position: number): Promise<void> {
  let total = 0;
  for (const c of chunks) total += c.length;
  let done = 0;
  while (done < total) {
    const rest = done === 0 ? chunks : [Buffer.concat(chunks).subarray(done)];
    const { bytesWritten } = await fh.writev(rest, position + done);
    done += bytesWritten;
  }
}
