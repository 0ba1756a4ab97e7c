/**
 * Settlements whose outcome the gateway does not know: the facilitator answered
 * `settlement_pending` (its transaction was broadcast, the receipt did not arrive in time), or the
 * settle call failed after it was sent (the gateway's own timeout). The buyer was told it may
 * still be charged; here the gateway asks the facilitator again until the settlement is final,
 * then logs and counts the outcome once. A settle of the same authorization is what x402's
 * reference server retries with too: the facilitator answers it from the transaction it already
 * broadcast instead of sending another.
 */
import type { FacilitatorClient } from "@x402/core/server";
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import type { LogFn } from "../shared/log";
import type { PaymentMetrics } from "./metrics";

export interface PendingSettlement {
  readonly offer: string;
  readonly network: string;
  readonly asset: string;
  readonly amount: bigint;
  readonly payload: PaymentPayload;
  readonly requirement: PaymentRequirements;
  /** The broadcast transaction, when the facilitator named one. */
  readonly transaction?: string | undefined;
  readonly requestId?: string | string[] | undefined;
  /** Unix seconds after which the authorization can no longer be settled. */
  readonly expiresAt: number;
}

export type FollowOutcome = "settled" | "failed" | "pending";

/** What one more settle answer says about a pending settlement. Pure. */
export function followOutcome(answer: SettleResponse | undefined): FollowOutcome {
  if (!answer) return "pending"; // the facilitator did not answer: ask again
  if (answer.success) return "settled";
  return answer.errorReason === "settlement_pending" || answer.errorReason === "settlement_in_progress"
    ? "pending"
    : "failed";
}

export interface PendingSettlementsOptions {
  facilitator: FacilitatorClient;
  metrics: PaymentMetrics;
  log: LogFn;
  /** Between two settles of one pending settlement (default 5 s). */
  retryMs?: number;
  /** Followed this long after the authorization expired before giving up (default 10 minutes). */
  graceSeconds?: number;
  now?: () => number;
}

export class PendingSettlements {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: PendingSettlementsOptions) {}

  follow(pending: PendingSettlement): void {
    this.opts.metrics.pending.inc({ offer: pending.offer });
    this.schedule(pending);
  }

  stop(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private now(): number {
    return this.opts.now?.() ?? Math.floor(Date.now() / 1000);
  }

  private schedule(pending: PendingSettlement): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.check(pending);
    }, this.opts.retryMs ?? 5_000);
    timer.unref();
    this.timers.add(timer);
  }

  private async check(pending: PendingSettlement): Promise<void> {
    let answer: SettleResponse | undefined;
    try {
      answer = await this.opts.facilitator.settle(pending.payload, pending.requirement);
    } catch {
      answer = undefined;
    }
    const outcome = followOutcome(answer);
    if (outcome === "pending") {
      if (this.now() <= pending.expiresAt + (this.opts.graceSeconds ?? 600)) return this.schedule(pending);
      return this.finish(pending, "unresolved", answer);
    }
    this.finish(pending, outcome, answer);
  }

  private finish(
    pending: PendingSettlement,
    outcome: "settled" | "failed" | "unresolved",
    answer: SettleResponse | undefined,
  ): void {
    const { metrics, log } = this.opts;
    const { offer, network, asset, amount } = pending;
    metrics.pending.dec({ offer });
    metrics.pendingResolved.inc({ offer, outcome });
    if (outcome === "settled") {
      metrics.settled.inc({ offer, network });
      metrics.received.inc({ offer, network, asset }, Number(amount));
    }
    log("x402: pending settlement final", {
      level: outcome === "settled" ? "info" : "error",
      requestId: pending.requestId,
      offer,
      network,
      asset,
      amount,
      outcome,
      transaction: answer?.transaction || pending.transaction,
      ...(answer && !answer.success ? { reason: answer.errorReason } : {}),
    });
  }
}
