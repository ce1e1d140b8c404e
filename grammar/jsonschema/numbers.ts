/**
 * Numbers as GBNF: decimal integers and plain decimals (no exponent) constrained to a range, with no
 * leading zeros and no `-0`. Unbounded sides stop at 16 integer digits and 15 fraction digits, as
 * llama.cpp's converter does, so that a model can never write digits forever.
 */
import { cls, lit, repeat } from "./gbnf.js";

const MAX_INT_DIGITS = 16;
const MAX_FRAC_DIGITS = 15;
const INT_CAP = 10n ** BigInt(MAX_INT_DIGITS) - 1n;

const digitClass = (a: number, b: number): string => (a === b ? lit(String(a)) : cls([[48 + a, 48 + b]]));
const ANY = "[0-9]";
const alt = (xs: string[]): string => (xs.length === 1 ? xs[0]! : `(${xs.join(" | ")})`);

/** Alternatives for the equal-length digit strings from `a` to `b` (a ≤ b). */
function sameLength(a: string, b: string): string[] {
  if (a.length === 1) return [digitClass(+a, +b)];
  const a0 = +a[0]!;
  const b0 = +b[0]!;
  const ra = a.slice(1);
  const rb = b.slice(1);
  if (a0 === b0) return sameLength(ra, rb).map((x) => `${lit(String(a0))} ${x}`);
  const out: string[] = [];
  const n = ra.length;
  const lowFull = /^0*$/.test(ra);
  const highFull = /^9*$/.test(rb);
  let mid0 = a0 + 1;
  let mid1 = b0 - 1;
  if (lowFull) mid0 = a0;
  else out.push(...sameLength(ra, "9".repeat(n)).map((x) => `${lit(String(a0))} ${x}`));
  if (highFull) mid1 = b0;
  if (mid0 <= mid1) out.push(`${digitClass(mid0, mid1)} ${repeat(ANY, n, n)}`);
  if (!highFull) out.push(...sameLength("0".repeat(n), rb).map((x) => `${lit(String(b0))} ${x}`));
  return out;
}

/** Alternatives for the natural numbers lo..hi, written without leading zeros. */
function naturals(lo: bigint, hi: bigint): string[] {
  const out: string[] = [];
  const a = lo.toString();
  const b = hi.toString();
  for (let len = a.length; len <= b.length; len++) {
    const from = len === a.length ? a : "1" + "0".repeat(len - 1);
    const to = len === b.length ? b : "9".repeat(len);
    out.push(...sameLength(from, to));
  }
  return out;
}

/**
 * An integer in [min, max] (null = unbounded on that side, capped at 16 digits). Returns null when the
 * range is empty.
 */
export function integerRange(min: bigint | null, max: bigint | null): string | null {
  const lo = min ?? -INT_CAP;
  const hi = max ?? INT_CAP;
  if (lo > hi) return null;
  const alts: string[] = [];
  if (lo < 0n) {
    const nHi = -lo; // magnitudes of the negatives
    const nLo = hi < 0n ? -hi : 1n;
    alts.push(`"-" ${alt(naturals(nLo, nHi))}`);
  }
  if (hi >= 0n) alts.push(...naturals(lo > 0n ? lo : 0n, hi));
  return alt(alts);
}

/** A decimal written as digits: integer part and fraction digits without trailing zeros. */
interface Dec {
  int: bigint;
  frac: string;
}

/** Splits a non-negative finite number's decimal text (no exponent) into integer and fraction. */
function dec(x: number): Dec | null {
  const s = Math.abs(x).toString();
  if (/e/i.test(s)) return null;
  const [i, f = ""] = s.split(".");
  return { int: BigInt(i!), frac: f.replace(/0+$/, "") };
}

/** Fraction digits: lists of alternatives, each either "" (no fraction) or a non-empty digit run. */
type Frac = string[];
const ANY_RUN = repeat(ANY, 0, MAX_FRAC_DIGITS);

/** Digit strings d with 0.d ≥ 0.a (> when strict); a has no trailing zeros. */
function fracAtLeast(a: string, strict: boolean): Frac {
  if (a === "") return strict ? [`${repeat('"0"', 0, MAX_FRAC_DIGITS)} [1-9] ${ANY_RUN}`] : ["", repeat(ANY, 1, MAX_FRAC_DIGITS)];
  const a0 = +a[0]!;
  const out = fracAtLeast(trim(a.slice(1)), strict).map((x) => seq(lit(String(a0)), x));
  if (a0 < 9) out.push(`${digitClass(a0 + 1, 9)} ${ANY_RUN}`);
  return out;
}

/** Digit strings d with 0.d ≤ 0.b (< when strict). */
function fracAtMost(b: string, strict: boolean): Frac {
  if (b === "") return strict ? [] : ["", repeat('"0"', 1, MAX_FRAC_DIGITS)];
  const b0 = +b[0]!;
  const out: Frac = [""]; // zero is below b, which is not zero
  if (b0 > 0) out.push(`${digitClass(0, b0 - 1)} ${ANY_RUN}`);
  for (const x of fracAtMost(trim(b.slice(1)), strict)) out.push(seq(lit(String(b0)), x));
  return out;
}

/** Digit strings d with 0.a ≤ 0.d ≤ 0.b (each bound strict or not), where 0.a < 0.b. */
function fracBetween(a: string, as: boolean, b: string, bs: boolean): Frac {
  const out: Frac = a === "" && !as ? [""] : [];
  const a0 = a === "" ? 0 : +a[0]!;
  const b0 = +b[0]!;
  const at = trim(a.slice(1));
  const bt = trim(b.slice(1));
  if (a0 === b0) {
    for (const x of fracBetween(at, as, bt, bs)) out.push(seq(lit(String(a0)), x));
    return out;
  }
  for (const x of fracAtLeast(at, as)) out.push(seq(lit(String(a0)), x));
  if (b0 - a0 >= 2) out.push(`${digitClass(a0 + 1, b0 - 1)} ${ANY_RUN}`);
  for (const x of fracAtMost(bt, bs)) out.push(seq(lit(String(b0)), x));
  return out;
}

/** Digit strings d with 0.d = 0.a. */
const fracEqual = (a: string): Frac => (a === "" ? ["", repeat('"0"', 1, MAX_FRAC_DIGITS)] : [`${lit(a)} ${repeat('"0"', 0, MAX_FRAC_DIGITS)}`]);

const trim = (s: string): string => s.replace(/0+$/, "");
const seq = (a: string, b: string): string => (b === "" ? a : `${a} ${b}`);

/** An integer part followed by each fraction alternative. */
function withFrac(int: string, frac: Frac): string[] {
  const out: string[] = [];
  if (frac.includes("")) out.push(int);
  const rest = frac.filter((x) => x !== "");
  if (rest.length) out.push(`${int} "." ${alt(rest)}`);
  return out;
}

/** Non-negative decimals v with lo ≤ v ≤ hi (each bound may be strict; hi null = unbounded). */
function nonNegative(lo: Dec, loStrict: boolean, hi: Dec | null, hiStrict: boolean): string[] {
  if (hi && lo.int === hi.int) {
    if (lo.frac === hi.frac) return loStrict || hiStrict ? [] : withFrac(lit(lo.int.toString()), fracEqual(lo.frac));
    return withFrac(lit(lo.int.toString()), fracBetween(lo.frac, loStrict, hi.frac, hiStrict));
  }
  const out = withFrac(lit(lo.int.toString()), fracAtLeast(lo.frac, loStrict));
  const top = hi ? hi.int - 1n : INT_CAP;
  if (lo.int + 1n <= top) out.push(...withFrac(alt(naturals(lo.int + 1n, top)), fracAtLeast("", false)));
  if (hi) out.push(...withFrac(lit(hi.int.toString()), fracAtMost(hi.frac, hiStrict)));
  return out;
}

/**
 * A JSON number (no exponent) in the range; bounds are JSON numbers, `strict` makes a bound exclusive.
 * Returns null for an empty range; throws RangeError for bounds written with an exponent.
 */
export function numberRange(
  min: number | null,
  minStrict: boolean,
  max: number | null,
  maxStrict: boolean,
): string | null {
  if (min !== null && max !== null && (min > max || (min === max && (minStrict || maxStrict)))) return null;
  const alts: string[] = [];
  const decOf = (x: number): Dec => {
    const d = dec(x);
    if (!d) throw new RangeError(`bound ${x} is too large or too small to write without an exponent`);
    return d;
  };
  // negatives: -v with v in (0 or -max, -min]
  if (min === null || min < 0) {
    const vHi = min === null ? null : decOf(min);
    const vLo = max !== null && max < 0 ? decOf(max) : { int: 0n, frac: "" };
    const vLoStrict = max !== null && max < 0 ? maxStrict : true; // never -0
    const neg = nonNegative(vLo, vLoStrict, vHi, min === null ? false : minStrict);
    if (neg.length) alts.push(`"-" ${alt(neg)}`);
  }
  if (max === null || max >= 0) {
    const lo = min !== null && min >= 0 ? decOf(min) : { int: 0n, frac: "" };
    const loStrict = min !== null && min >= 0 ? minStrict : false;
    const hi = max === null ? null : decOf(max);
    if (!(max === 0 && maxStrict)) alts.push(...nonNegative(lo, loStrict, hi, max === null ? false : maxStrict));
  }
  return alts.length ? alt(alts) : null;
}
