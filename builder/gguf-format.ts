/**
 * GGUF/GGML tables the header reader needs: metadata value types, tensor types with their block
 * geometry, llama.cpp's file-type names, and Ollama's way of printing a parameter count.
 */

/** GGUF metadata value type ids → names. */
export const GGUF_VALUE_TYPES = [
  "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
] as const;
export type GgufValueType = (typeof GGUF_VALUE_TYPES)[number];

/** On-disk size of fixed-size value types (strings and arrays are variable). */
export const GGUF_FIXED_SIZE: Partial<Record<GgufValueType, number>> = {
  u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8,
};

export interface GgmlTypeInfo {
  name: string;
  /** Elements per block. */
  blockElements: number;
  /** Bytes per block. */
  blockBytes: number;
}

const t = (name: string, blockElements: number, blockBytes: number): GgmlTypeInfo => ({ name, blockElements, blockBytes });

/** GGML tensor types by id (ggml.h's enum ggml_type). Ids 4, 5 and 31–33, 36–38 are retired. */
export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map([
  [0, t("F32", 1, 4)],
  [1, t("F16", 1, 2)],
  [2, t("Q4_0", 32, 18)],
  [3, t("Q4_1", 32, 20)],
  [6, t("Q5_0", 32, 22)],
  [7, t("Q5_1", 32, 24)],
  [8, t("Q8_0", 32, 34)],
  [9, t("Q8_1", 32, 36)],
  [10, t("Q2_K", 256, 84)],
  [11, t("Q3_K", 256, 110)],
  [12, t("Q4_K", 256, 144)],
  [13, t("Q5_K", 256, 176)],
  [14, t("Q6_K", 256, 210)],
  [15, t("Q8_K", 256, 292)],
  [16, t("IQ2_XXS", 256, 66)],
  [17, t("IQ2_XS", 256, 74)],
  [18, t("IQ3_XXS", 256, 98)],
  [19, t("IQ1_S", 256, 50)],
  [20, t("IQ4_NL", 32, 18)],
  [21, t("IQ3_S", 256, 110)],
  [22, t("IQ2_S", 256, 82)],
  [23, t("IQ4_XS", 256, 136)],
  [24, t("I8", 1, 1)],
  [25, t("I16", 1, 2)],
  [26, t("I32", 1, 4)],
  [27, t("I64", 1, 8)],
  [28, t("F64", 1, 8)],
  [29, t("IQ1_M", 256, 56)],
  [30, t("BF16", 1, 2)],
  [34, t("TQ1_0", 256, 54)],
  [35, t("TQ2_0", 256, 66)],
  [39, t("MXFP4", 32, 17)],
]);

export function ggmlTypeName(id: number): string {
  return GGML_TYPES.get(id)?.name ?? `unknown(${id})`;
}

/** llama.cpp's names for general.file_type (enum llama_ftype, without the MOSTLY_ prefix). */
export const FILE_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, "F32"], [1, "F16"], [2, "Q4_0"], [3, "Q4_1"], [4, "MXFP4"], [7, "Q8_0"], [8, "Q5_0"], [9, "Q5_1"],
  [10, "Q2_K"], [11, "Q3_K_S"], [12, "Q3_K_M"], [13, "Q3_K_L"], [14, "Q4_K_S"], [15, "Q4_K_M"],
  [16, "Q5_K_S"], [17, "Q5_K_M"], [18, "Q6_K"], [19, "IQ2_XXS"], [20, "IQ2_XS"], [21, "Q2_K_S"],
  [22, "IQ3_XS"], [23, "IQ3_XXS"], [24, "IQ1_S"], [25, "IQ4_NL"], [26, "IQ3_S"], [27, "IQ3_M"],
  [28, "IQ2_S"], [29, "IQ2_M"], [30, "IQ4_XS"], [31, "IQ1_M"], [32, "BF16"], [36, "TQ1_0"],
  [37, "TQ2_0"], [38, "MXFP4"],
]);

/** The file type a model whose dominant tensor type is `ggmlType` is usually called (K-quants: the _M mix). */
export function fileTypeFromTensorType(ggmlType: number): string {
  const name = ggmlTypeName(ggmlType);
  const kMix: Record<string, string> = { Q3_K: "Q3_K_M", Q4_K: "Q4_K_M", Q5_K: "Q5_K_M" };
  return kMix[name] ?? name;
}

/**
 * `x` with `decimals` digits after the point, rounding the exact binary value half to even, as Go's
 * fmt "%.Nf" does (JavaScript's toFixed rounds exact ties up instead).
 */
export function formatFixedGo(x: number, decimals: number): string {
  const exact = x.toFixed(60); // exact for the magnitudes printed here (≥ 1, < 2^53)
  const point = exact.indexOf(".");
  const keep = exact.slice(0, point + 1 + decimals).replace(".", "");
  const rest = exact.slice(point + 1 + decimals);
  const first = rest.charCodeAt(0) - 48;
  const tail = rest.slice(1).replace(/0+$/, "");
  const last = keep.charCodeAt(keep.length - 1) - 48;
  const up = first > 5 || (first === 5 && (tail.length > 0 || last % 2 === 1));
  let digits = keep;
  if (up) {
    const arr = digits.split("");
    let i = arr.length - 1;
    while (i >= 0 && arr[i] === "9") arr[i--] = "0";
    if (i < 0) arr.unshift("1");
    else arr[i] = String(Number(arr[i]) + 1);
    digits = arr.join("");
  }
  if (decimals === 0) return digits;
  return `${digits.slice(0, digits.length - decimals)}.${digits.slice(digits.length - decimals)}`;
}

/**
 * A parameter count as Ollama prints it (its format.HumanNumber): "8B", "3.2B", "22.57M", "137M", "5K".
 * Billions keep one decimal and millions two unless the value is whole; thousands none.
 */
export function humanNumber(n: number): string {
  if (n >= 1e9) {
    const v = n / 1e9;
    return Number.isInteger(v) ? `${formatFixedGo(v, 0)}B` : `${formatFixedGo(v, 1)}B`;
  }
  if (n >= 1e6) {
    const v = n / 1e6;
    return Number.isInteger(v) ? `${formatFixedGo(v, 0)}M` : `${formatFixedGo(v, 2)}M`;
  }
  if (n >= 1e3) return `${formatFixedGo(n / 1e3, 0)}K`;
  return String(Math.trunc(n));
}
