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

export function checkBudget(
  spec: PurchaseRequestSpec,
  offered: { network: string; asset: string; amount: bigint },
  spend: Spend,
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
