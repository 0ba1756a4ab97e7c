/**
 * The x402 payment gate: the gateway's in-path payment step for paid routes.
 *
 *   no payment      → 402, PAYMENT-REQUIRED (v2, CAIP-2) + a v1 JSON body (accepts[], legacy names)
 *   bad payment     → 400/402 with a reason (412 for a Permit2 payer without allowance); nothing
 *                     proxied, nothing settled
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
 * and no silent one. When the outcome is unknown (the facilitator's receipt wait or the gateway's
 * own facilitator timeout ran out after the settlement was sent) the buyer gets 402
 * `settlement_pending` instead, never "nothing was charged", and pending.ts follows the
 * settlement to its final state.
 *
 * The steps are separate, as in x402's reference HTTP resource server: decision.ts decides on
 * the request alone (pure), `verify` adds the replay guard and the facilitator and ends in a
 * verdict (gateVerdict.ts), responses.ts writes refusals, and `serve` proxies a verified payment
 * and settles it (settlement.ts). An `upto` answer is metered and settled by meteredResponse.ts,
 * a `batch-settlement` deposit or voucher is checked and charged by channelGate.ts.
 */
import type * as http from "node:http";
import type { FacilitatorClient } from "@x402/core/server";
import type { VerifyError } from "@x402/core/types";
import { drainPhase } from "../../api/drain";
import { pricedForRoute } from "../../api/pricing";
import { PayerLimiter } from "../gateway/limits";
import type { GatedRoute, PaymentGate, ProxyFn } from "../gateway/paymentGate";
import type { HeldOffer } from "../gateway/routing";
import { sendJson } from "../shared/http";
import { errorMessage, type LogFn, REQUEST_ID_HEADER } from "../shared/log";
import { ChannelGate } from "./channelGate";
import type { ChannelPayments } from "./channels";
import { decideChannelPayment, decidePayment } from "./decision";
import { discoveryExtensions } from "./discovery";
import {
  type GateVerdict,
  type Outcome,
  PAYMENT_HEADERS,
  type RefusedVerdict,
  type VerifiedVerdict,
} from "./gateVerdict";
import { type IdentifiedPayment, identifyPayment, PaidResponses, type Settled } from "./idempotency";
import {
  MAX_METERED_REQUEST_BYTES,
  type MeteredCall,
  readMeteredCall,
  respondMetered,
} from "./meteredResponse";
import type { PaymentMetrics } from "./metrics";
import { parsePaymentHeader } from "./paymentHeader";
import { PendingSettlements } from "./pending";
import { facilitatorRefusalStatus, isRejection, type Rejection, rejection } from "./reasons";
import { ReplayGuard } from "./replay";
import { hasBody, readBounded } from "./requestBody";
import { type OfferRequirements, offerSchemes, requirementsFor, resourceDescription } from "./requirements";
import { type Refusal, writeRefusal } from "./responses";
import { Settler, timed, wire } from "./settlement";

export interface X402GateOptions {
  facilitator: FacilitatorClient;
  metrics: PaymentMetrics;
  log: LogFn;
  /** Seconds since the epoch (tests move the clock). */
  now?: () => number;
  /** Between two settles of a pending settlement (default 5 s). */
  pendingRetryMs?: number;
  /** Enforces offers' `limits.perPayerRps` (default: one for this gate, a single replica). */
  payerLimiter?: PayerLimiter;
  /** The extensions the facilitator's /supported lists (default: none declared). */
  facilitatorExtensions?: () => readonly string[];
  /** The facilitator's upto signer per network, from its /supported (default: none, exact only). */
  uptoFacilitators?: () => ReadonlyMap<string, string>;
  /** batch-settlement channels (default: none; offers listing the scheme offer it only with these). */
  channels?: ChannelPayments;
  /** The facilitator's batch-settlement receiver authorizer per network, from its /supported. */
  channelAuthorizers?: () => ReadonlyMap<string, string>;
}

/** The largest body of a request paid with a payment-identifier (its digest is what a retry must match). */
export const MAX_IDENTIFIED_REQUEST_BYTES = 1 << 20;

/** An identified payment, with the request body the gate read for it (sent upstream from memory). */
type Identified = IdentifiedPayment & { readonly body?: Buffer };

/**
 * Whether `err` is @x402/core's VerifyError. Matched by name and shape: the library's server
 * bundle carries its own copy of the class, so `instanceof` against the exported one fails.
 */
function isVerifyError(err: unknown): err is VerifyError {
  return err instanceof Error && err.name === "VerifyError" && "invalidReason" in err;
}

export class X402PaymentGate implements PaymentGate {
  readonly name = "x402";
  private readonly replays = new ReplayGuard();
  private readonly payers: PayerLimiter;
  /** Settled answers by payment-identifier, for retries of the same payment. */
  private readonly paid = new PaidResponses();
  readonly pending: PendingSettlements;
  private readonly settler: Settler;
  /** batch-settlement payments, when the gateway takes them. */
  private readonly channels: ChannelGate | undefined;

  constructor(private readonly opts: X402GateOptions) {
    this.payers = opts.payerLimiter ?? new PayerLimiter();
    this.pending = new PendingSettlements({
      facilitator: opts.facilitator,
      metrics: opts.metrics,
      log: opts.log,
      ...(opts.pendingRetryMs !== undefined ? { retryMs: opts.pendingRetryMs } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    this.settler = new Settler({
      facilitator: opts.facilitator,
      metrics: opts.metrics,
      log: opts.log,
      pending: this.pending,
    });
    this.channels = opts.channels
      ? new ChannelGate({ channels: opts.channels, metrics: opts.metrics, log: opts.log })
      : undefined;
  }

  private now(): number {
    return this.opts.now?.() ?? Math.floor(Date.now() / 1000);
  }

  async handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    held: HeldOffer,
    route: GatedRoute,
    proxy: ProxyFn,
  ): Promise<void> {
    const started = process.hrtime.bigint();
    // The route's own price and schemes, when it has them: the 402, verify and settle use them.
    const offer: HeldOffer = { ...held, spec: pricedForRoute(held.spec, route.route) };
    // Past the offer's end no payment is taken (not even looked at): 410, not a 402 inviting one.
    // Requests verified before the end are already being served and settle as usual.
    if (drainPhase(offer.end, this.opts.now ? this.opts.now() * 1000 : Date.now()) !== "open") {
      const end = new Date(offer.end.endsAt ?? 0).toISOString();
      const refusal = this.refusal(
        {
          kind: "rejected",
          rejection: rejection(
            "offer_ended",
            `${offer.name} stopped taking payments at ${end}; nothing was charged`,
          ),
        },
        offer.name,
      );
      writeRefusal(
        req,
        res,
        {
          requirements: requirementsFor(offer.spec, route.resourceUrl, []),
          url: route.resourceUrl,
          description: resourceDescription(offer.spec),
        },
        refusal,
      );
      this.opts.metrics.requests.inc({ offer: offer.name, outcome: "rejected" });
      return;
    }
    const metered = offerSchemes(offer.spec).includes("upto")
      ? await readMeteredCall(req, this.opts.uptoFacilitators?.() ?? new Map())
      : undefined;
    const requirements = requirementsFor(
      offer.spec,
      route.resourceUrl,
      this.opts.facilitatorExtensions?.() ?? [],
      metered && metered !== "too_large" ? metered.terms : undefined,
      this.opts.channels ? this.opts.channelAuthorizers?.() : undefined,
    );
    const identified = await this.identify(req, route.resourceUrl, metered);
    let outcome: Outcome;
    if (identified && "reason" in identified) {
      outcome = this.refuse(req, res, offer, route, requirements, {
        kind: "rejected",
        rejection: identified,
      });
    } else {
      const again = identified ? await this.answerRetry(identified, req, res, offer.name) : undefined;
      if (again) outcome = again;
      else {
        let settled: Settled | undefined;
        try {
          const served = await this.gateAndServe(
            req,
            res,
            offer,
            route,
            proxy,
            requirements,
            metered,
            identified,
          );
          outcome = served.outcome;
          settled = served.settled;
        } finally {
          // Settled: its answer serves the retries. Not charged: the identifier is free again.
          if (identified && settled) this.paid.settle(identified.key, settled);
          else if (identified) this.paid.forget(identified.key);
        }
      }
    }
    const { metrics } = this.opts;
    metrics.requests.inc({ offer: offer.name, outcome });
    metrics.duration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /** The decision, verify, the payer's limit, then the upstream and settlement (or a refusal). */
  private async gateAndServe(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    proxy: ProxyFn,
    requirements: OfferRequirements,
    metered: MeteredCall | "too_large" | undefined,
    identified: Identified | undefined,
  ): Promise<{ outcome: Outcome; settled?: Settled }> {
    const channel = this.channels ? decideChannelPayment(req.headers, requirements) : undefined;
    const checked = channel ? await this.channels?.check(channel, offer, requirements) : undefined;
    const verdict: GateVerdict = checked
      ? checked.verdict
      : metered === "too_large"
        ? {
            kind: "rejected",
            rejection: rejection(
              "request_too_large",
              `this offer meters tokens and reads the request to size the payment: send at most ${MAX_METERED_REQUEST_BYTES} bytes`,
            ),
          }
        : await this.verify(req.headers, requirements, offer.name);
    const limited =
      verdict.kind === "verified"
        ? this.admitPayer(verdict.payer ?? verdict.payment.matched.binding.from, offer)
        : verdict.kind === "channel"
          ? this.admitPayer(verdict.payer, offer)
          : undefined;
    if (limited) {
      // A checked payment that is not used: released, so the buyer can send it again later.
      if (verdict.kind === "verified") this.replays.release(verdict.payment.replayKey);
      if (verdict.kind === "channel") await this.channels?.release(verdict.match);
      this.opts.metrics.failed.inc({ offer: offer.name, reason: "payer_rate_limited" });
      req.resume();
      res.setHeader("retry-after", String(limited.retryAfterSeconds));
      sendJson(res, 429, { error: "payer_rate_limited", message: limited.message });
      return { outcome: "rejected" };
    }
    if (verdict.kind === "channel")
      return {
        // A channel verdict comes from the channel gate only.
        outcome: await this.channels!.serve(
          verdict.match,
          offer,
          proxy,
          req.headers[REQUEST_ID_HEADER],
          identified?.body,
        ),
      };
    if (verdict.kind === "verified")
      // Set by the gateway before the gate runs; the same id reaches the upstream.
      return this.serve(
        verdict,
        offer,
        proxy,
        req.headers[REQUEST_ID_HEADER],
        metered === "too_large" ? undefined : metered,
        identified !== undefined,
        identified?.body,
      );
    // A refused voucher gets the channel's state in its 402 (corrective), so the buyer resyncs.
    return { outcome: this.refuse(req, res, offer, route, checked?.corrective ?? requirements, verdict) };
  }

  /** Writes the refusal of a request that is not proxied (the 402 with its terms). */
  private refuse(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    requirements: OfferRequirements,
    verdict: RefusedVerdict,
  ): Outcome {
    const refusal = this.refusal(verdict, offer.name);
    // The 402 says how to call the route (bazaar), so it can be discovered without paying.
    const discovery = discoveryExtensions(offer.spec, req.method ?? "GET", route.subPath);
    const described = discovery
      ? { ...requirements, extensions: { ...requirements.extensions, ...discovery } }
      : requirements;
    writeRefusal(
      req,
      res,
      { requirements: described, url: route.resourceUrl, description: resourceDescription(offer.spec) },
      refusal,
    );
    return verdict.kind === "required"
      ? "payment_required"
      : refusal.error === "facilitator_unavailable"
        ? "facilitator_unavailable"
        : "rejected";
  }

  /**
   * The payment-identifier of a v2 payment, if it carries one (a malformed one is refused). A retry must match the first request's body too, so
   * an identified request's body is read here (bounded) and sent upstream from memory; a metered
   * request's was read already.
   */
  private async identify(
    req: http.IncomingMessage,
    resourceUrl: string,
    metered: MeteredCall | "too_large" | undefined,
  ): Promise<Identified | Rejection | undefined> {
    const parsed = parsePaymentHeader(req.headers);
    if (parsed === undefined || isRejection(parsed) || parsed.version !== 2) return undefined;
    const method = req.method ?? "GET";
    const identified = identifyPayment(parsed.payload, method, resourceUrl);
    // A metered request over its size is refused before any payment work anyway.
    if (identified === undefined || "reason" in identified || metered === "too_large") return identified;
    // A metered request's body was read already (and is sent as the metering rewrote it).
    if (metered) return identifyPayment(parsed.payload, method, resourceUrl, metered.raw);
    if (!hasBody(req)) return identified;
    const body = await readBounded(req, MAX_IDENTIFIED_REQUEST_BYTES);
    if (body === "too_large")
      return rejection(
        "request_too_large",
        `a payment with a payment-identifier pays for a request body of at most ${MAX_IDENTIFIED_REQUEST_BYTES} bytes (a retry must send the same body, so the gateway reads it first): send a smaller body, or pay without an identifier; nothing was charged`,
      );
    const withBody = identifyPayment(parsed.payload, method, resourceUrl, body);
    return withBody && !("reason" in withBody) ? { ...withBody, body } : withBody;
  }

  /**
   * A payment whose identifier was seen: the same payment again gets the first answer (waiting
   * for it while it runs), a different one is refused. Undefined: first use, handle it.
   */
  private async answerRetry(
    payment: IdentifiedPayment,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offerName: string,
  ): Promise<Outcome | undefined> {
    // Bounded: a running first request ends (settled or forgotten) before `done` resolves.
    for (let round = 0; round < 3; round++) {
      const found = this.paid.lookup(payment, this.now());
      if (found.kind === "new") return undefined;
      if (found.kind === "running") {
        await found.done;
        continue;
      }
      req.resume();
      const settled = found.kind === "settled" ? found.settled : undefined;
      if (settled && "kept" in settled) {
        const { kept } = settled;
        const { trailer: _trailer, ...headers } = kept.headers;
        res.writeHead(kept.status, { ...headers, "content-length": String(kept.body.length) });
        res.end(kept.body);
        this.opts.log("x402: retry of a settled payment answered from its kept response", {
          offer: offerName,
          paymentId: payment.id,
        });
        return "served_again";
      }
      if (settled) for (const [name, value] of Object.entries(settled.receipt)) res.setHeader(name, value);
      const refusal = settled
        ? rejection(
            "payment_identifier_settled",
            `the payment with identifier ${payment.id} was already settled, but ${settled.why}; it is not charged again (its receipt is in PAYMENT-RESPONSE)`,
          )
        : rejection(
            "payment_identifier_conflict",
            `the identifier ${payment.id} was already used with a different payment or for a different request; nothing was charged for this one: use a new identifier for a new payment`,
          );
      this.opts.metrics.failed.inc({ offer: offerName, reason: refusal.reason });
      sendJson(res, refusal.status, { error: refusal.reason, message: refusal.message });
      return "rejected";
    }
    this.opts.metrics.failed.inc({ offer: offerName, reason: "payment_identifier_conflict" });
    sendJson(res, 409, {
      error: "payment_identifier_conflict",
      message: `the identifier ${payment.id} is in use by requests still running; retry later`,
    });
    return "rejected";
  }

  /**
   * `limits.perPayerRps` by the paying address the facilitator verified (the signed `from` when
   * it names none; a channel's payer): after verify, before anything is proxied or settled.
   * Undefined: admitted.
   */
  private admitPayer(
    payerAddress: string | undefined,
    offer: HeldOffer,
  ): { retryAfterSeconds: number; message: string } | undefined {
    const perPayerRps = offer.spec.limits?.perPayerRps;
    if (!perPayerRps) return undefined;
    const payer = payerAddress ?? "unknown";
    const admission = this.payers.admit(`${offer.namespace}/${offer.name}`, payer, perPayerRps);
    return admission.admitted ? undefined : admission;
  }

  /**
   * The decision on the request, then the replay guard and the facilitator's verify. A payment
   * that is not verified is not claimed: the buyer may retry it.
   */
  async verify(
    headers: http.IncomingHttpHeaders,
    requirements: OfferRequirements,
    offerName: string,
  ): Promise<GateVerdict> {
    const now = this.now();
    const decision = decidePayment(headers, requirements, now);
    if (decision.kind !== "accepted") return decision;
    const { payment } = decision;
    // Claimed before the first await: concurrent copies of one authorization see it at once.
    if (!this.replays.claim(payment.replayKey, payment.expiresAt, now)) {
      return {
        kind: "rejected",
        rejection: rejection("replayed", "this payment authorization was already used"),
      };
    }
    const { payload, requirement } = wire(payment);
    let verified: Awaited<ReturnType<FacilitatorClient["verify"]>>;
    try {
      verified = await timed(this.opts.metrics, "verify", () =>
        this.opts.facilitator.verify(payload, requirement),
      );
    } catch (err) {
      this.replays.release(payment.replayKey);
      // A facilitator may refuse with a non-2xx status and a verify response (x402-rs answers 400,
      // or 412 for a missing allowance); the client library throws that as VerifyError. It is
      // the facilitator's verdict on the payment, not a sign that the facilitator is down.
      if (isVerifyError(err)) {
        return {
          kind: "refused",
          reason: err.invalidReason ?? "invalid_payment",
          message: err.invalidMessage ?? "the facilitator rejected the payment",
        };
      }
      this.opts.log("x402: facilitator verify failed", {
        level: "error",
        requestId: headers[REQUEST_ID_HEADER],
        offer: offerName,
        error: errorMessage(err),
      });
      return {
        kind: "rejected",
        rejection: rejection(
          "facilitator_unavailable",
          "the payment facilitator is unreachable; nothing was charged, try again later",
        ),
      };
    }
    if (!verified.isValid) {
      this.replays.release(payment.replayKey);
      return {
        kind: "refused",
        reason: verified.invalidReason ?? "invalid_payment",
        message: verified.invalidMessage ?? "the facilitator rejected the payment",
      };
    }
    return { kind: "verified", payment, payer: verified.payer };
  }

  /** The answer to a request that is not proxied; refusals are counted by reason. */
  private refusal(verdict: RefusedVerdict, offerName: string): Refusal {
    if (verdict.kind === "required")
      return { status: 402, error: "payment_required", message: verdict.message };
    const refusal =
      verdict.kind === "rejected"
        ? {
            status: verdict.rejection.status,
            error: verdict.rejection.reason,
            message: verdict.rejection.message,
          }
        : {
            status: facilitatorRefusalStatus(verdict.reason),
            error: verdict.reason,
            message: verdict.message,
          };
    this.opts.metrics.failed.inc({ offer: offerName, reason: refusal.error });
    return refusal;
  }

  /**
   * Proxies a verified payment's request and settles on the upstream's 2xx head. Not settled
   * (the upstream failed, or settlement did): the authorization is released for a retry.
   */
  private async serve(
    verdict: VerifiedVerdict,
    offer: HeldOffer,
    proxy: ProxyFn,
    requestId: string | string[] | undefined,
    metered: MeteredCall | undefined,
    keep: boolean,
    /** The request's body when the gate read it for an identified payment. */
    readBody: Buffer | undefined,
  ): Promise<{ outcome: Outcome; settled?: Settled }> {
    const { payment } = verdict;
    const offerName = offer.name;
    this.opts.metrics.verified.inc({ offer: offerName, network: payment.network });
    let settled = false;
    let receipt: Record<string, string> = {};
    const keepBytes = keep ? { keep: this.paid.maxResponseBytes } : {};
    const state = { pending: false };
    // The gate read the body of a metered offer's request (sent as read, or as rewritten) or of
    // an identified payment's: it is sent from memory.
    const body = metered ? { body: metered.request.body } : readBody ? { body: readBody } : {};
    const upto = metered && payment.matched.version === 2 && payment.matched.requirement.scheme === "upto";
    const result = upto
      ? await proxy({
          stripRequestHeaders: PAYMENT_HEADERS,
          ...body,
          respond: async (upstream, res) => {
            const outcome = await respondMetered(upstream, res, {
              offer,
              requirement: wire(payment).requirement,
              metered,
              settle: (charge) => this.settler.settle(verdict, offerName, requestId, state, charge),
              ...(keep ? { keepUpTo: this.paid.maxResponseBytes } : {}),
            });
            settled = outcome.settled;
            receipt = outcome.receipt;
            return outcome;
          },
        })
      : await proxy({
          stripRequestHeaders: PAYMENT_HEADERS,
          ...body,
          ...keepBytes,
          beforeResponse: async (head) => {
            if (head.status < 200 || head.status >= 300) return undefined; // not charged
            receipt = await this.settler.settle(verdict, offerName, requestId, state);
            settled = true;
            return receipt;
          },
        });
    if (settled)
      return {
        outcome: "served",
        settled:
          result.kept && result.kept !== "too_large"
            ? { kept: result.kept }
            : {
                receipt,
                why:
                  result.kept === "too_large"
                    ? `its answer was over ${this.paid.maxResponseBytes} bytes, too large to keep`
                    : "its answer did not reach the end (the connection closed), so it was not kept",
              },
      };
    // A pending settlement may still be mined: its authorization stays claimed.
    if (state.pending) return { outcome: "settle_pending" };
    this.replays.release(payment.replayKey);
    return { outcome: result.status >= 200 && result.status < 300 ? "settle_failed" : "upstream_failed" };
  }
}
