/** Exact comparison of decimal amounts written as strings ("0.001"), with no floating point. */

const DECIMAL = /^(\d+)(?:\.(\d+))?$/;

export function isDecimal(value: string): boolean {
  return DECIMAL.test(value);
}

/** -1, 0 or 1 as a < b, a = b, a > b. Both must satisfy isDecimal. */
export function compareDecimal(a: string, b: string): number {
  const [, ai, af = ""] = DECIMAL.exec(a)!;
  const [, bi, bf = ""] = DECIMAL.exec(b)!;
  const scale = Math.max(af.length, bf.length);
  const x = BigInt(ai + af.padEnd(scale, "0"));
  const y = BigInt(bi + bf.padEnd(scale, "0"));
  return x < y ? -1 : x > y ? 1 : 0;
}
