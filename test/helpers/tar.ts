/**
 * Tar archives written byte by byte from the POSIX ustar header layout, for tests that need archives a
 * real tool would refuse to make (an entry named `../x`, a symlink where a file should be).
 */
export interface TarEntry {
  name: string;
  data?: Uint8Array;
  /** ustar typeflag: "0" file (default), "2" symlink, "5" directory */
  type?: "0" | "2" | "5";
  linkname?: string;
}

function field(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, Math.min(length, Buffer.byteLength(value)), "utf8");
}

function octal(n: number, length: number): string {
  return n.toString(8).padStart(length - 1, "0") + "\0";
}

export function tarOf(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.data ?? new Uint8Array());
    const h = Buffer.alloc(512);
    field(h, 0, 100, e.name);
    field(h, 100, 8, octal(e.type === "5" ? 0o755 : 0o644, 8));
    field(h, 108, 8, octal(0, 8));
    field(h, 116, 8, octal(0, 8));
    field(h, 124, 12, octal(e.type && e.type !== "0" ? 0 : data.length, 12));
    field(h, 136, 12, octal(0, 12));
    h.fill(" ", 148, 156);
    field(h, 156, 1, e.type ?? "0");
    if (e.linkname) field(h, 157, 100, e.linkname);
    field(h, 257, 6, "ustar\0");
    field(h, 263, 2, "00");
    let sum = 0;
    for (const b of h) sum += b;
    field(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
    parts.push(h);
    if (!e.type || e.type === "0") {
      parts.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
