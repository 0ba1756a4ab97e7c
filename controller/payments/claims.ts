/**
 * When the gateway claims a lane's channel vouchers on chain, and which channels it refunds:
 * pure decisions over the stored channel state (channels.ts does the I/O).
 */
import type { Channel } from "@x402/evm/batch-settlement/server";
import { errorMessage } from "../shared/log";

/** An offer's claim thresholds, in atomic units and seconds (from ServiceOffer `channels`). */
export interface LaneTerms {
  readonly claimIntervalSeconds: number;
  readonly refundIdleSeconds: number;
  /** Claim as soon as this much is charged and not claimed (atomic units). */
  readonly claimAmount?: bigint;
}

/** What the channels' payers were charged and the receiver has not claimed yet. */
export function owed(channels: readonly Pick<Channel, "chargedCumulativeAmount" | "totalClaimed">[]): bigint {
  let sum = 0n;
  for (const c of channels) {
    const due = BigInt(c.chargedCumulativeAmount) - BigInt(c.totalClaimed);
    if (due > 0n) sum += due;
  }
  return sum;
}

/**
 * "amount": the owed total reached the threshold; "interval": something is owed and the last
 * claim is `intervalMs` old; otherwise "wait". Nothing owed never claims (no empty transaction).
 */
export function claimDecision(input: {
  now: number;
  lastClaimAt: number;
  owed: bigint;
  intervalMs: number;
  threshold?: bigint;
}): "amount" | "interval" | "wait" {
  if (input.owed <= 0n) return "wait";
  if (input.threshold !== undefined && input.owed >= input.threshold) return "amount";
  if (input.now - input.lastClaimAt >= input.intervalMs) return "interval";
  return "wait";
}

/**
 * Channels idle for `idleMs` with part of their deposit not charged: refunded cooperatively
 * (the library claims what they owe in the same transaction). A channel serving a request
 * (a live reservation) is never idle.
 */
export function idleRefunds(channels: readonly Channel[], now: number, idleMs: number): Channel[] {
  return channels.filter(
    (c) =>
      BigInt(c.balance) > BigInt(c.chargedCumulativeAmount) &&
      !(c.pendingRequest && c.pendingRequest.expiresAt > now) &&
      now - c.lastRequestTimestamp >= idleMs,
  );
}

/**
 * Whether a failed settle of claimed funds only means there was nothing to settle (the
 * facilitator's `nothing_to_settle`, in the error's message or its `errorReason`). The error comes
 * from the facilitator's answer, so its fields may be of any type: a non-string reason is not read.
 */
export function isNothingToSettle(err: unknown): boolean {
  const reason =
    typeof err === "object" && err !== null ? (err as { errorReason?: unknown }).errorReason : undefined;
  return (
    /nothing_to_settle/i.test(errorMessage(err)) ||
    (typeof reason === "string" && /nothing_to_settle/i.test(reason))
  );
}
