/**
 * What one request costs, in the token's smallest unit: the one pricing function behind the 402
 * (x402 `amount` / v1 `maxAmountRequired`) and every catalog (services.json, openapi.json,
 * skill.md, the storefront). Pure.
 */
import { toAtomic } from "./money";
import type { Payment } from "./resources";

/**
 * perMTok offers are charged per request on a fixed, documented basis: the price of
 * PER_MTOK_BASIS_TOKENS tokens (1,000), rounded up to the token's smallest unit. The charge is
 * known before the upstream runs, so `exact` payments work and the buyer's worst case is bounded.
 */
export const PER_MTOK_BASIS_TOKENS = 1000n;

/** The atomic amount charged per request for one payment option. */
export function chargePerRequest(payment: Pick<Payment, "price" | "asset">): bigint {
  const { perRequest, perMTok } = payment.price;
  if (perRequest !== undefined) return toAtomic(perRequest, payment.asset.decimals);
  if (perMTok !== undefined) {
    const perMillion = toAtomic(perMTok, payment.asset.decimals);
    return (perMillion * PER_MTOK_BASIS_TOKENS + 999_999n) / 1_000_000n;
  }
  throw new Error("payment has no price");
}
