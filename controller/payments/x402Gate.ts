/**
 * The x402 payment gate: the gateway's in-path payment step for paid routes.
 *
 *   no payment      → 402, PAYMENT-REQUIRED (v2, CAIP-2) + a v1 JSON body (accepts[], legacy names)
 *   bad payment     → 400/402 with a reason; nothing proxied, nothing settled
 *   payment         → verify with the facilitator → proxy (payment headers stripped)
 *                     → upstream 2xx: settle, then send the response with PAYMENT-RESPONSE
 *                       (X-PAYMENT-RESPONSE for v1 buyers)
 *                     → upstream not 2xx: the buyer is not charged; the upstream answer is passed on
 *   facilitator down → 503, fail closed (nothing proxied)
 *
 * When settled: on the upstream's 2xx response *head*, before any body byte reaches the buyer.
 * Streams (SSE, chunked) are therefore paid for once the upstream has accepted the request, and
 * then stream unbuffered. If settlement fails the buyer gets a 402 (or 503) instead of the body,
 * the upstream response is discarded, and the failure is logged and counted: no free service,
 * and no silent one.
 */
import type * as http from "node:http";
import { encodePaymentRequiredHeader, encodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentRequiredV1, PaymentRequiredV2 } from "@x402/core/schemas";
import type { FacilitatorClient } from "@x402/core/server";
import type { PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { toCaip2 } from "../../api/chains";
import { type GatedRoute, GateResponse, type PaymentGate, type ProxyFn } from "../gateway/paymentGate";
import type { HeldOffer } from "../gateway/routing";
import type { PaymentMetrics } from "./metrics";
import {
  bindingOf,
  isRejection,
  type Matched,
  matchPayment,
  parsePaymentHeader,
  type Rejection,
  replayKey,
} from "./paymentHeader";
import { type OfferRequirements, requirementsFor, resourceDescription } from "./requirements";

export interface X402GateOptions {
  facilitator: FacilitatorClient;
  metrics: PaymentMetrics;
  log: (message: string) => void;
  /** Seconds since the epoch (tests move the clock). */
  now?: () => number;
}

const PAYMENT_HEADERS = ["payment-signature", "x-payment"] as const;

function paymentRequired(reqs: OfferRequirements, resource: string, description: string, error: string) {
  const v2: PaymentRequiredV2 = {
    x402Version: 2,
    error,
    resource: { url: resource, description, mimeType: "application/json" },
    accepts: reqs.v2,
    ...(reqs.extensions ? { extensions: reqs.extensions } : {}),
  };
  const v1: PaymentRequiredV1 = { x402Version: 1, error, accepts: reqs.v1 };
  return { v2, v1 };
}

export class X402PaymentGate implements PaymentGate {
  readonly name = "x402";
  /** Authorizations in flight or settled, until they expire: a replay is refused locally. */
  private readonly seen = new Map<string, number>();

  constructor(private readonly opts: X402GateOptions) {}

  private now(): number {
    return this.opts.now?.() ?? Math.floor(Date.now() / 1000);
  }

  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    proxy: ProxyFn,
  ): Promise<void> {
    const started = process.hrtime.bigint();
    const { metrics } = this.opts;
    const reqs = requirementsFor(offer.spec, route.resourceUrl);
    const description = resourceDescription(offer.spec);
    const done = (outcome: string) => {
      metrics.requests.inc({ offer: offer.name, outcome });
      metrics.duration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const answer = (
      status: number,
      error: string,
      message: string,
      extraHeaders: Record<string, string> = {},
    ) => {
      req.resume(); // the request body is never forwarded
      const required = paymentRequired(reqs, route.resourceUrl, description, error);
      const body = JSON.stringify(status === 402 ? { ...required.v1, message } : { error, message });
      res.writeHead(status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": String(Buffer.byteLength(body)),
        "cache-control": "no-store",
        ...(status === 402
          ? { "payment-required": encodePaymentRequiredHeader(required.v2 as PaymentRequired) }
          : {}),
        ...extraHeaders,
      });
      res.end(body);
    };
    const refuse = (r: Rejection) => {
      metrics.failed.inc({ offer: offer.name, reason: r.reason });
      answer(r.status, r.reason, r.message);
      done("rejected");
    };

    const parsed = parsePaymentHeader(req.headers);
    if (parsed === undefined) {
      answer(
        402,
        "payment_required",
        `this route costs ${reqs.v2.map((r) => `${r.amount} of ${r.asset} on ${r.network}`).join(" or ")}`,
      );
      done("payment_required");
      return;
    }
    if (isRejection(parsed)) return refuse(parsed);
    const matched = matchPayment(parsed, reqs, this.now());
    if (isRejection(matched)) return refuse(matched);

    const key = replayKey(matched);
    this.expireSeen();
    if (key && this.seen.has(key)) {
      return refuse({
        status: 402,
        reason: "replayed",
        message: "this payment authorization was already used",
      });
    }
    // Claimed before the first await: concurrent copies of one authorization see it at once.
    if (key) this.seen.set(key, this.expiry(matched));
    const unclaim = () => {
      if (key) this.seen.delete(key);
    };

    const payload = matched.payload as PaymentPayload;
    const requirement = matched.requirement as PaymentRequirements;
    let verify: Awaited<ReturnType<FacilitatorClient["verify"]>>;
    try {
      verify = await this.timed("verify", () => this.opts.facilitator.verify(payload, requirement));
    } catch (err) {
      unclaim();
      this.opts.log(`x402: facilitator verify failed for offer ${offer.name}: ${describe(err)}`);
      metrics.failed.inc({ offer: offer.name, reason: "facilitator_unavailable" });
      answer(
        503,
        "facilitator_unavailable",
        "the payment facilitator is unreachable; nothing was charged, try again later",
      );
      done("facilitator_unavailable");
      return;
    }
    if (!verify.isValid) {
      unclaim();
      return refuse({
        status: 402,
        reason: verify.invalidReason ?? "invalid_payment",
        message: verify.invalidMessage ?? "the facilitator rejected the payment",
      });
    }
    // Labels and logs use CAIP-2 whatever version the buyer spoke.
    const network =
      matched.version === 2 ? matched.requirement.network : toCaip2(matched.requirement.network);
    metrics.verified.inc({ offer: offer.name, network });

    let settlement: SettleResponse | undefined;
    const outcome = await proxy({
      stripRequestHeaders: PAYMENT_HEADERS,
      beforeResponse: async (head) => {
        if (head.status < 200 || head.status >= 300) return undefined; // not charged
        try {
          settlement = await this.timed("settle", () => this.opts.facilitator.settle(payload, requirement));
        } catch (err) {
          this.opts.log(
            `x402: settle unreachable for offer ${offer.name} (payer ${verify.payer}): ${describe(err)}; response withheld`,
          );
          metrics.failed.inc({ offer: offer.name, reason: "facilitator_unavailable" });
          throw gateAnswer(503, {
            error: "facilitator_unavailable",
            message:
              "the upstream answered but settlement could not be reached; nothing was charged and the response was withheld",
          });
        }
        const responseHeader = matched.version === 2 ? "payment-response" : "x-payment-response";
        if (!settlement.success) {
          this.opts.log(
            `x402: settle failed for offer ${offer.name} (payer ${verify.payer}): ${settlement.errorReason}; response withheld`,
          );
          metrics.failed.inc({ offer: offer.name, reason: settlement.errorReason ?? "settle_failed" });
          throw gateAnswer(
            402,
            {
              error: settlement.errorReason ?? "settle_failed",
              message: "settlement failed; the response was withheld and nothing was charged",
            },
            { [responseHeader]: encodePaymentResponseHeader(settlement) },
          );
        }
        metrics.settled.inc({ offer: offer.name, network });
        return { [responseHeader]: encodePaymentResponseHeader(settlement) };
      },
    });
    if (!settlement?.success) unclaim(); // not charged: the authorization may be retried
    done(
      settlement?.success
        ? "served"
        : outcome.status >= 200 && outcome.status < 300
          ? "settle_failed"
          : "upstream_failed",
    );
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const end = this.opts.metrics.facilitatorDuration.startTimer({ op });
    try {
      return await fn();
    } finally {
      end();
    }
  }

  private expiry(matched: Matched): number {
    // EIP-3009 validBefore or Permit2 deadline: after it, the chain refuses the authorization anyway.
    const validBefore = Number(bindingOf(matched.payload.payload).validBefore ?? 0);
    return validBefore > 0 ? validBefore : this.now() + 3600;
  }

  private expireSeen(): void {
    const now = this.now();
    for (const [key, until] of this.seen) if (until < now) this.seen.delete(key);
  }
}

function gateAnswer(
  status: number,
  body: Record<string, string>,
  headers: Record<string, string> = {},
): GateResponse {
  return new GateResponse(
    status,
    { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
    JSON.stringify(body),
  );
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
