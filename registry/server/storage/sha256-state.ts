/**
 * SHA-256 (FIPS 180-4) in plain TypeScript, with a state that can be saved and restored. Node's crypto
 * Hash cannot export its internal state, and the parts of an open S3 multipart upload cannot be read
 * back, so an upload session continued on another replica must carry the hash state itself: the S3
 * upload path hashes with this and saves `save()` in the session object after every committed part.
 *
 * The state is the eight chaining words, the total length and the (< 64) bytes not yet compressed.
 *
 * The compression function is generated once, at load, as straight-line code over many blocks: 64
 * rounds unrolled with the working variables renamed instead of moved and the message schedule in 16
 * locals. V8 runs that about 1.5–2× faster than the loop form (measured here: ~175 vs ~113 MiB/s on one
 * core), and upload throughput on S3 is bounded by this hash. The source text is built only from the
 * constants below, never from input.
 */

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const INIT = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

type CompressBlocks = (h: Int32Array, p: Uint8Array, off: number, end: number) => void;

/** FIPS 180-4 §6.2.2 for every 64-byte block of p[off, end), updating the chaining words h in place. */
function generateCompress(): CompressBlocks {
  const rotr = (x: string, n: number) => `((${x} >>> ${n}) | (${x} << ${32 - n}))`;
  const v = ["a", "b", "c", "d", "e", "f", "g", "k"];
  const out: string[] = [
    "let h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], h4 = h[4], h5 = h[5], h6 = h[6], h7 = h[7];",
    "for (; off < end; off += 64) {",
    "let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, k = h7, t1 = 0, t2 = 0, x = 0, y = 0;",
  ];
  for (let i = 0; i < 16; i++) {
    out.push(`let w${i} = (p[off + ${4 * i}] << 24) | (p[off + ${4 * i + 1}] << 16) | (p[off + ${4 * i + 2}] << 8) | p[off + ${4 * i + 3}];`);
  }
  for (let t = 0; t < 64; t++) {
    const w = `w${t & 15}`;
    if (t >= 16) {
      out.push(`x = w${(t - 15) & 15}; y = w${(t - 2) & 15};`);
      out.push(`${w} = (${w} + (${rotr("x", 7)} ^ ${rotr("x", 18)} ^ (x >>> 3)) + w${(t - 7) & 15} + (${rotr("y", 17)} ^ ${rotr("y", 19)} ^ (y >>> 10))) | 0;`);
    }
    // round t works on the variables rotated by t places, so nothing is moved between rounds
    const [A, B, C, D, E, F, G, H] = v.map((_, i) => v[(i - (t % 8) + 8) % 8]!);
    out.push(`t1 = (${H} + (${rotr(E!, 6)} ^ ${rotr(E!, 11)} ^ ${rotr(E!, 25)}) + ((${E} & ${F}) ^ (~${E} & ${G})) + ${K[t]} + ${w}) | 0;`);
    out.push(`t2 = ((${rotr(A!, 2)} ^ ${rotr(A!, 13)} ^ ${rotr(A!, 22)}) + ((${A} & ${B}) ^ (${A} & ${C}) ^ (${B} & ${C}))) | 0;`);
    out.push(`${D} = (${D} + t1) | 0; ${H} = (t1 + t2) | 0;`);
  }
  out.push("h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;");
  out.push("h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + k) | 0;");
  out.push("}");
  out.push("h[0] = h0; h[1] = h1; h[2] = h2; h[3] = h3; h[4] = h4; h[5] = h5; h[6] = h6; h[7] = h7;");
  return new Function("h", "p", "off", "end", out.join("\n")) as CompressBlocks;
}

const compressBlocks = generateCompress();

/** What `save()` returns: JSON-safe. */
export interface Sha256State {
  /** the eight chaining words, as unsigned numbers */
  h: number[];
  /** bytes hashed so far */
  length: number;
  /** the buffered bytes (fewer than 64), base64 */
  pending: string;
}

export class ResumableSha256 {
  private readonly h = new Int32Array(8);
  private readonly block = new Uint8Array(64);
  private blockLen = 0;
  private total = 0;

  constructor(state?: Sha256State) {
    if (!state) {
      this.h.set(INIT);
      return;
    }
    if (state.h.length !== 8) throw new Error("sha256 state: 8 words expected");
    for (let i = 0; i < 8; i++) this.h[i] = state.h[i]! | 0;
    const pending = Buffer.from(state.pending, "base64");
    if (pending.length >= 64 || state.length % 64 !== pending.length) throw new Error("sha256 state: inconsistent pending bytes");
    this.block.set(pending);
    this.blockLen = pending.length;
    this.total = state.length;
  }

  get length(): number {
    return this.total;
  }

  update(data: Uint8Array): this {
    let i = 0;
    const n = data.length;
    this.total += n;
    if (this.blockLen > 0) {
      const take = Math.min(64 - this.blockLen, n);
      this.block.set(data.subarray(0, take), this.blockLen);
      this.blockLen += take;
      i = take;
      if (this.blockLen < 64) return this;
      compressBlocks(this.h, this.block, 0, 64);
      this.blockLen = 0;
    }
    const whole = i + ((n - i) & ~63);
    if (whole > i) compressBlocks(this.h, data, i, whole);
    i = whole;
    if (i < n) {
      this.block.set(data.subarray(i), 0);
      this.blockLen = n - i;
    }
    return this;
  }

  save(): Sha256State {
    return {
      h: Array.from(this.h, (x) => x >>> 0),
      length: this.total,
      pending: Buffer.from(this.block.subarray(0, this.blockLen)).toString("base64"),
    };
  }

  /** The digest of everything so far, as hex; the hasher itself is left untouched. */
  hex(): string {
    const copy = new ResumableSha256(this.save());
    const bits = copy.total * 8;
    const tail = new Uint8Array(((copy.blockLen + 9 + 63) >> 6) << 6);
    tail.set(copy.block.subarray(0, copy.blockLen));
    tail[copy.blockLen] = 0x80;
    const view = new DataView(tail.buffer);
    view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
    view.setUint32(tail.length - 4, bits >>> 0);
    compressBlocks(copy.h, tail, 0, tail.length);
    let out = "";
    for (let i = 0; i < 8; i++) out += (copy.h[i]! >>> 0).toString(16).padStart(8, "0");
    return out;
  }
}
