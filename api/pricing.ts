/**
 * What one request costs, in the token's smallest unit: the one pricing function behind the 402
 * (x402 `amount` / v1 `maxAmountRequired`) and every catalog (services.json, openapi.json,
 * skill.md, the storefront). Pure.
 */
import { networkLabel } from "./chains";
import { fromAtomic, toAtomic } from "./money";
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

/** What one request costs as a person reads it: "0.00025 USDC" (token symbol, decimal amount). */
export function chargeDisplay(payment: Pick<Payment, "price" | "asset">): string {
  return `${fromAtomic(chargePerRequest(payment), payment.asset.decimals)} ${payment.asset.symbol}`;
}

/** "0.001 USDC on Base Sepolia (testnet)": one payment option, for messages and pages. */
export function describeCharge(payment: Pick<Payment, "price" | "asset" | "network">): string {
  return `${chargeDisplay(payment)} on ${networkLabel(payment.network)}`;
}
