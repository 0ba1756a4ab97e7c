/**
 * Settling a verified `exact` or `upto` payment through the facilitator, on the upstream's answer.
 * Success gives the receipt header (PAYMENT-RESPONSE, or X-PAYMENT-RESPONSE for v1); anything else
 * throws the response that replaces the upstream's: 503 when the facilitator was never reached
 * (nothing was charged), 402 `settlement_pending` when the settlement may have gone out (followed
 * to its end by PendingSettlements), 402 with the facilitator's reason when it failed.
 */
import type { FacilitatorClient } from "@x402/core/server";
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import type { UptoCharge } from "../../api/pricing";
import { errorMessage, type LogFn } from "../shared/log";
import type { AcceptedPayment } from "./decision";
import type { VerifiedVerdict } from "./gateVerdict";
import type { PaymentMetrics } from "./metrics";
import type { PendingSettlements } from "./pending";
import { receiptHeader, withheldResponse } from "./responses";

export interface SettlerOptions {
  facilitator: FacilitatorClient;
  metrics: PaymentMetrics;
  log: LogFn;
  pending: PendingSettlements;
}

/** Set by `settle` when a settlement's outcome is unknown: its authorization stays claimed. */
export interface SettleState {
  pending: boolean;
}

export class Settler {
  constructor(private readonly opts: SettlerOptions) {}

  /**
   * Settles `verified` (for `metered.amount` when an upto charge is given) and returns the
   * receipt header; throws the response that replaces the upstream's otherwise.
   */
  async settle(
    verified: VerifiedVerdict,
    offerName: string,
    requestId: string | string[] | undefined,
    state: SettleState,
    metered?: UptoCharge,
  ): Promise<Record<string, string>> {
    const { payment, payer } = verified;
    const signed = wire(payment);
    const { payload } = signed;
    // upto settles the metered amount (the facilitator checks it is within the signed maximum).
    const requirement = metered
      ? { ...signed.requirement, amount: metered.amount.toString() }
      : signed.requirement;
    const { metrics } = this.opts;
    const log: LogFn = (msg, fields) => this.opts.log(msg, { requestId, offer: offerName, payer, ...fields });
    const matched = payment.matched;
    const amount =
      metered?.amount ??
      BigInt(matched.version === 2 ? matched.requirement.amount : matched.requirement.maxAmountRequired);
    /** The receipt of an upto settlement says what was charged, and for how many tokens. */
    const receiptOf = (settlement: SettleResponse) =>
      receiptHeader(
        payment.matched.version,
        metered
          ? {
              ...settlement,
              amount: settlement.amount ?? amount.toString(),
              extra: {
                ...settlement.extra,
                tokens: metered.tokens.toString(),
                ...(metered.capped ? { capped: metered.capped } : {}),
              },
            }
          : settlement,
      );
    /** The settlement may have happened: the buyer is told so, and it is followed to its end. */
    const pending = (transaction: string | undefined, receipt: Record<string, string>, why: string) => {
      state.pending = true;
      log("x402: settlement pending; response withheld, following it", {
        level: "error",
        transaction,
        reason: why,
      });
      metrics.failed.inc({ offer: offerName, reason: "settlement_pending" });
      this.opts.pending.follow({
        offer: offerName,
        network: payment.network,
        asset: requirement.asset,
        amount,
        payload,
        requirement,
        transaction,
        requestId,
        expiresAt: payment.expiresAt,
      });
      return withheldResponse(
        402,
        "settlement_pending",
        `the settlement was submitted but its outcome is not known yet${transaction ? ` (transaction ${transaction})` : ""}: you may still be charged for this request, so do not pay for it again; the gateway follows it until it is final. The response was withheld.`,
        receipt,
      );
    };
    let settlement: SettleResponse;
    try {
      settlement = await timed(metrics, "settle", () => this.opts.facilitator.settle(payload, requirement));
    } catch (err) {
      // Only a facilitator that was never reached certainly sent nothing; a timeout or a broken
      // answer may come after the settlement went out.
      if (!neverReached(err)) throw pending(undefined, {}, errorMessage(err));
      log("x402: settle unreachable; response withheld", { level: "error", error: errorMessage(err) });
      metrics.failed.inc({ offer: offerName, reason: "facilitator_unavailable" });
      throw withheldResponse(
        503,
        "facilitator_unavailable",
        "the upstream answered but settlement could not be reached; nothing was charged and the response was withheld",
      );
    }
    const receipt = receiptOf(settlement);
    if (!settlement.success && settlement.errorReason === "settlement_pending")
      throw pending(
        settlement.transaction || undefined,
        receipt,
        settlement.errorMessage ?? "settlement_pending",
      );
    if (!settlement.success) {
      log("x402: settle failed; response withheld", { level: "warn", reason: settlement.errorReason });
      const reason = settlement.errorReason ?? "settle_failed";
      metrics.failed.inc({ offer: offerName, reason });
      throw withheldResponse(
        402,
        reason,
        "settlement failed; the response was withheld and nothing was charged",
        receipt,
      );
    }
    metrics.settled.inc({ offer: offerName, network: payment.network });
    metrics.received.inc(
      { offer: offerName, network: payment.network, asset: requirement.asset },
      Number(amount),
    );
    log("x402: settled", {
      network: payment.network,
      asset: requirement.asset,
      amount,
      transaction: settlement.transaction,
      ...(metered ? { scheme: "upto", tokens: metered.tokens, capped: metered.capped } : {}),
    });
    return receipt;
  }
}

/** Runs a facilitator call, timing it in x402_facilitator_request_duration_seconds. */
export async function timed<T>(metrics: PaymentMetrics, op: string, fn: () => Promise<T>): Promise<T> {
  const end = metrics.facilitatorDuration.startTimer({ op });
  try {
    return await fn();
  } finally {
    end();
  }
}

/** The payload and requirement as the facilitator client takes them (v1 and v2 alike). */
export function wire(payment: AcceptedPayment): {
  payload: PaymentPayload;
  requirement: PaymentRequirements;
} {
  return {
    payload: payment.matched.payload as PaymentPayload,
    requirement: payment.matched.requirement as PaymentRequirements,
  };
}

/** Connection-level failures before any byte reached the facilitator: nothing was sent. */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** Whether `err` (or a cause of it) says the facilitator was never reached. */
export function neverReached(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_CONNECTED.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
