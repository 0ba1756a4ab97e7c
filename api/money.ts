/**
 * Prices are decimal strings in token units ("0.001" USDC) and become atomic integers
 * (1000 for 6 decimals) exactly: no floating point anywhere on the payment path.
 */

const DECIMAL = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;

export class PriceError extends Error {}

/** True for a plain, non-negative decimal string ("0.01", "12"), no exponent or sign. */
export function isDecimalString(value: string): boolean {
  return DECIMAL.test(value);
}

/** Converts "0.001" with 6 decimals to 1000n. Throws if the value has more precision than the token. */
export function toAtomic(value: string, decimals: number): bigint {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) {
    throw new PriceError(`token decimals must be an integer between 0 and 36, got ${decimals}`);
  }
  if (!isDecimalString(value)) {
    throw new PriceError(
      `"${value}" is not a decimal amount: write it like "0.001" (no sign, exponent or unit)`,
    );
  }
  const [whole = "0", fraction = ""] = value.split(".");
  const trimmed = fraction.replace(/0+$/, "");
  if (trimmed.length > decimals) {
    throw new PriceError(
      `"${value}" has more than ${decimals} decimal places, the precision of the token; round it to ${decimals} places`,
    );
  }
  return BigInt(whole) * 10n ** BigInt(decimals) + BigInt(trimmed.padEnd(decimals, "0") || "0");
}

/** Converts 1000n with 6 decimals back to "0.001" (shortest exact form). */
export function fromAtomic(amount: bigint, decimals: number): string {
  if (amount < 0n) throw new PriceError("amounts are never negative");
  const base = 10n ** BigInt(decimals);
  const whole = amount / base;
  const fraction = (amount % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole.toString();
}

/** Compares two decimal strings exactly. */
export function compareDecimal(a: string, b: string): number {
  const places = Math.max(a.split(".")[1]?.length ?? 0, b.split(".")[1]?.length ?? 0);
  const x = toAtomic(a, places);
  const y = toAtomic(b, places);
  return x === y ? 0 : x < y ? -1 : 1;
}
