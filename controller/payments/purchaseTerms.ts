/**
 * A seller's payment options as the buyer side reads them, whatever the x402 version: v1 names
 * networks (`base-sepolia`) and prices in `maxAmountRequired`, v2 uses CAIP-2 and `amount`.
 * The purchase probe and the buyer proxy both decide with these functions, so the probe cannot
 * call a seller payable that the buyer then refuses. Pure.
 */
import { type Caip2, toCaip2 } from "../../api/chains";
import type { PurchaseRequestSpec } from "../../api/resources";

/** One payment option from a 402, normalized: CAIP-2 network and an atomic amount. */
export interface OfferedPayment {
  readonly scheme: string;
  /** The network as the seller wrote it. */
  readonly network: string;
  /** The network in CAIP-2; undefined when the seller names a network nobody knows. */
  readonly caip2?: Caip2 | undefined;
  readonly asset: string;
  readonly amountAtomic: bigint;
  readonly payTo: string;
  /** Token decimals, when the seller states them in `extra.decimals`. */
  readonly decimals?: number | undefined;
}

export type TermsMismatch = {
  readonly reason: "wrong_scheme" | "wrong_network" | "wrong_asset";
  readonly message: string;
};

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** Reads one entry of a 402's `accepts[]` (v1 or v2); undefined when it is not a payment option. */
export function readOffered(raw: unknown): OfferedPayment | undefined {
  const a = record(raw);
  if (!a) return undefined;
  const amount = a.amount ?? a.maxAmountRequired;
  if (typeof a.network !== "string" || typeof a.asset !== "string" || typeof amount !== "string")
    return undefined;
  if (!/^[0-9]{1,78}$/.test(amount)) return undefined;
  let caip2: Caip2 | undefined;
  try {
    caip2 = toCaip2(a.network);
  } catch {
    caip2 = undefined;
  }
  const extra = record(a.extra);
  const decimals =
    typeof extra?.decimals === "number" && Number.isInteger(extra.decimals) ? extra.decimals : undefined;
  return {
    scheme: typeof a.scheme === "string" ? a.scheme : "exact",
    network: a.network,
    caip2,
    asset: a.asset,
    amountAtomic: BigInt(amount),
    payTo: typeof a.payTo === "string" ? a.payTo : "",
    decimals,
  };
}

/**
 * Why `offered` is not what the purchase agreed to pay with; undefined when it is. `channels`:
 * the purchase also pays by x402 batch-settlement (spec.channels).
 */
export function termsMismatch(
  declared: PurchaseRequestSpec["payment"],
  offered: OfferedPayment,
  channels = false,
): TermsMismatch | undefined {
  const schemes = channels ? ["exact", "upto", "batch-settlement"] : ["exact", "upto"];
  if (!schemes.includes(offered.scheme))
    return {
      reason: "wrong_scheme",
      message: `the seller asks for scheme "${offered.scheme}"; the buyer pays ${schemes.map((s) => `"${s}"`).join(", ")}`,
    };
  if (offered.caip2 !== declared.network) {
    return {
      reason: "wrong_network",
      message: `the seller asks for payment on ${offered.caip2 ?? offered.network}; this purchase pays on ${declared.network}`,
    };
  }
  if (declared.asset && offered.asset.toLowerCase() !== declared.asset.toLowerCase()) {
    return {
      reason: "wrong_asset",
      message: `the seller asks for ${offered.asset}; this purchase pays in ${declared.asset}`,
    };
  }
  return undefined;
}
