/** Whether one more payment fits a PurchaseRequest's budget. Pure; amounts in atomic units. */
import { toAtomic } from "../../api/money";
import type { PurchaseRequestSpec } from "../../api/resources";
import type { Spend } from "./ledger";

export interface BudgetDecision {
  ok: boolean;
  reason?:
    | "over_max_price"
    | "over_max_per_request"
    | "over_max_per_day"
    | "over_max_total"
    | "wrong_network"
    | "wrong_asset";
  message?: string;
}

/**
 * `totals: false` checks the terms and the per-request limits only: a channel voucher draws on a
 * deposit the totals already counted (channelDeposit sizes deposits within them).
 */
export function checkBudget(
  spec: PurchaseRequestSpec,
  offered: { network: string; asset: string; amount: bigint },
  spend: Spend,
  { totals = true }: { totals?: boolean } = {},
): BudgetDecision {
  const decimals = spec.payment.decimals;
  const atomic = (v: string) => toAtomic(v, decimals);
  if (offered.network !== spec.payment.network) {
    return {
      ok: false,
      reason: "wrong_network",
      message: `the seller asks for payment on ${offered.network}; this purchase pays on ${spec.payment.network}`,
    };
  }
  if (spec.payment.asset && offered.asset.toLowerCase() !== spec.payment.asset.toLowerCase()) {
    return {
      ok: false,
      reason: "wrong_asset",
      message: `the seller asks for ${offered.asset}; this purchase pays in ${spec.payment.asset}`,
    };
  }
  if (offered.amount > atomic(spec.payment.maxPrice)) {
    return {
      ok: false,
      reason: "over_max_price",
      message: `the seller asks ${offered.amount} atomic units, above maxPrice ${spec.payment.maxPrice}`,
    };
  }
  if (offered.amount > atomic(spec.budget.maxPerRequest)) {
    return {
      ok: false,
      reason: "over_max_per_request",
      message: `the seller asks ${offered.amount} atomic units, above budget.maxPerRequest ${spec.budget.maxPerRequest}`,
    };
  }
  if (!totals) return { ok: true };
  if (spec.budget.maxPerDay !== undefined && spend.today + offered.amount > atomic(spec.budget.maxPerDay)) {
    return {
      ok: false,
      reason: "over_max_per_day",
      message: `today's spend would exceed budget.maxPerDay ${spec.budget.maxPerDay}`,
    };
  }
  if (spec.budget.maxTotal !== undefined && spend.total + offered.amount > atomic(spec.budget.maxTotal)) {
    return {
      ok: false,
      reason: "over_max_total",
      message: `the total spend would exceed budget.maxTotal ${spec.budget.maxTotal}`,
    };
  }
  return { ok: true };
}

/** A channel deposit without `channels.deposit`: this many calls at the seller's price. */
export const DEFAULT_DEPOSIT_CALLS = 100n;

export type DepositDecision =
  | { ok: true; amount: bigint }
  | { ok: false; reason: "over_max_total" | "over_max_per_day"; message: string };

/**
 * The size of a channel deposit or top-up. Pure; atomic units.
 *
 * `needed` is what the next voucher needs on top of the channel's balance (the library's
 * minimum); the deposit aims at `channels.deposit` (default {@link DEFAULT_DEPOSIT_CALLS} × the
 * price), at least `needed`, and at most what budget.maxTotal and budget.maxPerDay leave, since
 * the deposit is what the budget counts. When even `needed` does not fit, nothing is deposited
 * (or signed) and the call is refused.
 */
export function channelDeposit(
  spec: PurchaseRequestSpec,
  input: { needed: bigint; price: bigint },
  spend: Spend,
): DepositDecision {
  const atomic = (v: string) => toAtomic(v, spec.payment.decimals);
  const configured = spec.channels?.deposit;
  const target = configured !== undefined ? atomic(configured) : input.price * DEFAULT_DEPOSIT_CALLS;
  let amount = target > input.needed ? target : input.needed;
  const caps = [
    ["over_max_total", spec.budget.maxTotal, spend.total, "budget.maxTotal"],
    ["over_max_per_day", spec.budget.maxPerDay, spend.today, "budget.maxPerDay"],
  ] as const;
  for (const [reason, limit, used, field] of caps) {
    if (limit === undefined) continue;
    const left = atomic(limit) - used;
    if (left < input.needed) {
      return {
        ok: false,
        reason,
        message: `the channel needs a deposit of ${input.needed} atomic units for this call and ${field} ${limit} leaves ${left > 0n ? left : 0n}`,
      };
    }
    if (amount > left) amount = left;
  }
  return { ok: true, amount };
}
