/**
 * The `batch-settlement` scheme at the gate: a channel deposit or voucher is checked by
 * channels.ts (a voucher locally, with no facilitator call), proxied, and charged on the
 * upstream's 2xx head, when the voucher is committed to the channel's durable state (a deposit is
 * settled on chain) before any body byte is sent. Not 2xx: nothing is charged and the channel's
 * reservation is released.
 */
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { toAtomic } from "../../api/money";
import type { ProxyFn } from "../gateway/paymentGate";
import type { HeldOffer } from "../gateway/routing";
import { errorMessage, type LogFn } from "../shared/log";
import type { ChannelPayments } from "./channels";
import type { LaneTerms } from "./claims";
import type { ChannelPaymentMatch } from "./decision";
import { type GateVerdict, type Outcome, PAYMENT_HEADERS } from "./gateVerdict";
import type { PaymentMetrics } from "./metrics";
import { type Rejection, rejection } from "./reasons";
import { type OfferRequirements, offerPayments } from "./requirements";
import { receiptHeader, withheldResponse } from "./responses";

export interface ChannelGateOptions {
  channels: ChannelPayments;
  metrics: PaymentMetrics;
  log: LogFn;
}

/** A channel payment's verdict, and for a voucher on a stale base the requirements to resync from. */
export interface ChannelCheck {
  readonly verdict: GateVerdict;
  /** The requirements with the channel's state, for the 402 (the buyer's client re-signs from it). */
  readonly corrective?: OfferRequirements;
}

export class ChannelGate {
  constructor(private readonly opts: ChannelGateOptions) {}

  /**
   * A channel payment: a malformed or mismatched one is refused here, the rest is checked by
   * channels.ts. A voucher on a stale base is refused with the channel's state (`corrective`).
   */
  async check(
    channel: ChannelPaymentMatch | Rejection,
    offer: HeldOffer,
    requirements: OfferRequirements,
  ): Promise<ChannelCheck> {
    if (!("payload" in channel)) return { verdict: { kind: "rejected", rejection: channel } };
    let verdict: Awaited<ReturnType<ChannelPayments["verify"]>>;
    try {
      verdict = await this.opts.channels.verify(
        channel.payload as PaymentPayload,
        channel.requirement as PaymentRequirements,
        laneTerms(offer, channel.requirement.network, channel.requirement.asset),
      );
    } catch (err) {
      this.opts.log("x402: channel verify failed", {
        level: "error",
        offer: offer.name,
        error: errorMessage(err),
      });
      return {
        verdict: {
          kind: "rejected",
          rejection: rejection(
            "facilitator_unavailable",
            "the channel could not be checked (its state or the facilitator is unreachable); nothing was charged, try again later",
          ),
        },
      };
    }
    if (verdict.ok) return { verdict: { kind: "channel", match: channel, payer: verdict.payer } };
    const refused: GateVerdict = { kind: "refused", reason: verdict.reason, message: verdict.message };
    const fixed = verdict.corrective;
    if (!fixed) return { verdict: refused };
    return {
      verdict: refused,
      corrective: {
        ...requirements,
        v2: requirements.v2.map((r) => (r === channel.requirement ? (fixed as typeof r) : r)),
      },
    };
  }

  /** A checked payment that will not be served (the payer's limit): its reservation is released. */
  async release(match: ChannelPaymentMatch): Promise<void> {
    await this.opts.channels
      .cancel(match.payload as PaymentPayload, match.requirement as PaymentRequirements)
      .catch(() => undefined);
  }

  /** Proxies a checked channel payment and charges it on the upstream's 2xx head. */
  async serve(
    match: ChannelPaymentMatch,
    offer: HeldOffer,
    proxy: ProxyFn,
    requestId: string | string[] | undefined,
    /** The request's body when the gate read it (an identified payment's). */
    body: Buffer | undefined,
  ): Promise<Outcome> {
    const { channels, metrics } = this.opts;
    const payload = match.payload as PaymentPayload;
    const requirement = match.requirement as PaymentRequirements;
    metrics.verified.inc({ offer: offer.name, network: requirement.network });
    let charged = false;
    const result = await proxy({
      stripRequestHeaders: PAYMENT_HEADERS,
      ...(body ? { body } : {}),
      beforeResponse: async (head) => {
        if (head.status < 200 || head.status >= 300) return undefined;
        let settlement: SettleResponse;
        try {
          settlement = await channels.settle(payload, requirement);
        } catch (err) {
          this.opts.log("x402: channel charge failed; response withheld", {
            level: "error",
            requestId,
            offer: offer.name,
            error: errorMessage(err),
          });
          metrics.failed.inc({ offer: offer.name, reason: "facilitator_unavailable" });
          throw withheldResponse(
            503,
            "facilitator_unavailable",
            "the upstream answered but the channel payment could not be charged; nothing was charged and the response was withheld",
          );
        }
        if (!settlement.success) {
          const reason = settlement.errorReason ?? "settle_failed";
          metrics.failed.inc({ offer: offer.name, reason });
          throw withheldResponse(
            402,
            reason,
            settlement.errorMessage ?? "the channel payment was not charged; the response was withheld",
            receiptHeader(2, settlement),
          );
        }
        charged = true;
        metrics.settled.inc({ offer: offer.name, network: requirement.network });
        metrics.received.inc(
          { offer: offer.name, network: requirement.network, asset: requirement.asset },
          Number(requirement.amount),
        );
        return receiptHeader(2, settlement);
      },
    });
    if (charged) return "served";
    await this.release(match);
    return result.status >= 200 && result.status < 300 ? "settle_failed" : "upstream_failed";
  }
}

/** An offer's batch-settlement claim thresholds, in atomic units of the paid asset. */
export function laneTerms(offer: HeldOffer, network: string, asset: string): LaneTerms {
  const terms = offer.spec.channels;
  const paid = offerPayments(offer.spec).find(
    (p) => p.network === network && p.asset.address.toLowerCase() === asset.toLowerCase(),
  );
  return {
    claimIntervalSeconds: terms?.claimIntervalSeconds ?? 60,
    refundIdleSeconds: terms?.refundIdleSeconds ?? 3600,
    ...(terms?.claimAmount !== undefined && paid
      ? { claimAmount: toAtomic(terms.claimAmount, paid.asset.decimals) }
      : {}),
  };
}
