/** What the payment gate's steps hand each other: the verdict on a paid request, and its outcome. */
import type { AcceptedPayment, ChannelPaymentMatch } from "./decision";
import type { Rejection } from "./reasons";

/** Where a paid request stands once the gate has checked it, before anything is proxied. */
export type GateVerdict =
  | { readonly kind: "required"; readonly message: string }
  /** Refused by the gateway, with a reason from its table (replays and an unreachable facilitator included). */
  | { readonly kind: "rejected"; readonly rejection: Rejection }
  /** Refused by the facilitator, with its reason (a bad signature, no Permit2 allowance …). */
  | { readonly kind: "refused"; readonly reason: string; readonly message: string }
  | VerifiedVerdict
  /** A channel deposit or voucher, checked by channels.ts (the voucher locally). */
  | { readonly kind: "channel"; readonly match: ChannelPaymentMatch; readonly payer: string | undefined };

/** An `exact` or `upto` payment the facilitator verified. */
export interface VerifiedVerdict {
  readonly kind: "verified";
  readonly payment: AcceptedPayment;
  readonly payer: string | undefined;
}

/** A verdict that ends the request with a refusal (nothing proxied). */
export type RefusedVerdict = Exclude<GateVerdict, { kind: "verified" | "channel" }>;

/** The `outcome` label of x402_requests_total. */
export type Outcome =
  | "payment_required"
  | "rejected"
  | "facilitator_unavailable"
  | "served"
  /** A retry of a settled payment (same payment-identifier), answered from its kept response. */
  | "served_again"
  | "settle_failed"
  | "settle_pending"
  | "upstream_failed";

/** The payment headers, stripped from what reaches the upstream. */
export const PAYMENT_HEADERS = ["payment-signature", "x-payment"] as const;
