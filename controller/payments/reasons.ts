/**
 * Why the gateway refuses a payment on its own, and the HTTP status each refusal carries. The
 * README's Payments section lists the same table, and a unit test keeps the two equal. The
 * facilitator's reasons (a bad signature, no Permit2 allowance …) are passed on as it names them,
 * with 402 unless FACILITATOR_REASON_STATUS says otherwise.
 */
export const REJECTION_STATUS = {
  malformed_payment: 400,
  payment_header_too_large: 400,
  invalid_payload: 400,
  invalid_x402_version: 402,
  unsupported_scheme: 402,
  invalid_network: 402,
  asset_mismatch: 402,
  recipient_mismatch: 402,
  amount_mismatch: 402,
  not_yet_valid: 402,
  expired: 402,
  replayed: 402,
  invalid_payment_identifier: 400,
  payment_identifier_conflict: 409,
  payment_identifier_settled: 409,
  request_too_large: 413,
  offer_ended: 410,
  facilitator_unavailable: 503,
} as const satisfies Record<string, 400 | 402 | 409 | 410 | 413 | 503>;

export type RejectionReason = keyof typeof REJECTION_STATUS;

/**
 * The facilitator's reasons whose status is not 402. The exact-EVM scheme answers a Permit2
 * payment whose payer has not approved Permit2 with 412 Precondition Failed (the payment itself
 * is well formed; a precondition of paying is missing), and @x402/core's HTTP server does the
 * same. Every other facilitator reason is a 402.
 */
export const FACILITATOR_REASON_STATUS = {
  permit2_allowance_required: 412,
} as const satisfies Record<string, 412>;

/** The status of a refusal the facilitator gave, by its reason. */
export function facilitatorRefusalStatus(reason: string): 402 | 412 {
  return Object.hasOwn(FACILITATOR_REASON_STATUS, reason)
    ? FACILITATOR_REASON_STATUS[reason as keyof typeof FACILITATOR_REASON_STATUS]
    : 402;
}

/** A refusal by the gateway: a reason from the table, its status, and a sentence saying what to fix. */
export interface Rejection {
  readonly status: (typeof REJECTION_STATUS)[RejectionReason];
  readonly reason: RejectionReason;
  readonly message: string;
}

export function rejection(reason: RejectionReason, message: string): Rejection {
  return { status: REJECTION_STATUS[reason], reason, message };
}

export const isRejection = (x: unknown): x is Rejection =>
  typeof x === "object" && x !== null && "reason" in x && "status" in x;
