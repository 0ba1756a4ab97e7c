/**
 * The gate's decision about a paid request before any I/O: no payment (402 with the
 * requirements), a payment refused on its face (a reason from reasons.ts), or a payment that
 * answers one of the offer's requirements and goes on to the facilitator. Pure.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { PaymentPayloadV2, PaymentRequirementsV2 } from "@x402/core/schemas";
import { type Caip2, toCaip2 } from "../../api/chains";
import { type Matched, matchPayment, parsePaymentHeader, replayKey } from "./paymentHeader";
import { isRejection, type Rejection, rejection } from "./reasons";
import type { OfferRequirements } from "./requirements";

/** A payment that passed every local check, with what the rest of the path needs from it. */
export interface AcceptedPayment {
  readonly matched: Matched;
  /** Identifies the signed authorization (asset, payer, nonce); absent when it carries no nonce. */
  readonly replayKey: string | undefined;
  /** Seconds since the epoch after which the chain refuses the authorization anyway. */
  readonly expiresAt: number;
  /** CAIP-2, whatever version the buyer spoke (metric labels and logs). */
  readonly network: Caip2;
}

export type PaymentDecision =
  | { readonly kind: "required"; readonly message: string }
  | { readonly kind: "rejected"; readonly rejection: Rejection }
  | { readonly kind: "accepted"; readonly payment: AcceptedPayment };

/** Replays are remembered this long when the authorization names no expiry. */
const UNBOUNDED_REPLAY_WINDOW_SECONDS = 3600;

export function decidePayment(
  headers: IncomingHttpHeaders,
  reqs: OfferRequirements,
  now: number,
): PaymentDecision {
  const parsed = parsePaymentHeader(headers);
  if (parsed === undefined) {
    return {
      kind: "required",
      // For a person reading the 402 (the machine-readable terms are in PAYMENT-REQUIRED/accepts).
      message: `this route costs ${reqs.prices.join(" or ")} per request${reqs.metered ? `, or ${reqs.metered.join(" or ")}` : ""}; pay with an x402 client (https://x402.org)`,
    };
  }
  if (isRejection(parsed)) return { kind: "rejected", rejection: parsed };
  const matched = matchPayment(parsed, reqs, now);
  if (isRejection(matched)) return { kind: "rejected", rejection: matched };
  // EIP-3009 validBefore or Permit2 deadline.
  const validBefore = Number(matched.binding.validBefore ?? 0);
  return {
    kind: "accepted",
    payment: {
      matched,
      replayKey: replayKey(matched),
      expiresAt: validBefore > 0 ? validBefore : now + UNBOUNDED_REPLAY_WINDOW_SECONDS,
      network:
        matched.version === 2 ? (matched.requirement.network as Caip2) : toCaip2(matched.requirement.network),
    },
  };
}

/** A batch-settlement (channel) payment matched to the offer's requirement; checked by channels.ts. */
export interface ChannelPaymentMatch {
  readonly payload: PaymentPayloadV2;
  readonly requirement: PaymentRequirementsV2;
}

/**
 * The channel payment in the request, when its PAYMENT-SIGNATURE accepted the offer's
 * `batch-settlement` requirement; undefined for any other payment (decidePayment's). The
 * requirement must be the 402's own (scheme, network, asset, payTo and amount), so the charge
 * is the offer's price, never one the buyer chose.
 */
export function decideChannelPayment(
  headers: IncomingHttpHeaders,
  reqs: OfferRequirements,
): ChannelPaymentMatch | Rejection | undefined {
  const parsed = parsePaymentHeader(headers);
  if (parsed === undefined || isRejection(parsed) || parsed.version !== 2) return undefined;
  const accepted = parsed.payload.accepted;
  if (accepted.scheme !== "batch-settlement") return undefined;
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const requirement = reqs.v2.find(
    (r) =>
      r.scheme === "batch-settlement" &&
      r.network === accepted.network &&
      same(r.asset, accepted.asset) &&
      same(r.payTo, accepted.payTo),
  );
  if (!requirement)
    return rejection(
      "unsupported_scheme",
      `this offer takes no batch-settlement payment in ${accepted.asset} on ${accepted.network} to ${accepted.payTo}; pay one of the 402's accepts`,
    );
  if (requirement.amount !== accepted.amount)
    return rejection(
      "amount_mismatch",
      `a request costs ${requirement.amount} atomic units here, not ${accepted.amount}; sign a voucher for the 402's amount`,
    );
  return { payload: parsed.payload, requirement };
}
