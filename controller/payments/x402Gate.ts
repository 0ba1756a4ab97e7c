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
 * verdict, responses.ts writes refusals, and `serve` proxies and settles a verified payment.
 */
import { once } from "node:events";
import type * as http from "node:http";
import type { FacilitatorClient } from "@x402/core/server";
import type { PaymentPayload, PaymentRequirements, SettleResponse, VerifyError } from "@x402/core/types";
import { drainPhase } from "../../api/drain";
import { toAtomic } from "../../api/money";
import { pricedForRoute, type UptoCharge, uptoCharge, uptoTokenCap } from "../../api/pricing";
import { PayerLimiter } from "../gateway/limits";
import {
  type GatedRoute,
  GateResponse,
  type PaymentGate,
  type ProxyFn,
  type ProxyOutcome,
} from "../gateway/paymentGate";
import { stripHopByHop } from "../gateway/proxy";
import type { HeldOffer } from "../gateway/routing";
import { sendJson } from "../shared/http";
import { type LogFn, REQUEST_ID_HEADER } from "../shared/log";
import type { ChannelPayments } from "./channels";
import type { LaneTerms } from "./claims";
import {
  type AcceptedPayment,
  type ChannelPaymentMatch,
  decideChannelPayment,
  decidePayment,
} from "./decision";
import { discoveryExtensions } from "./discovery";
import { type IdentifiedPayment, identifyPayment, PaidResponses, type Settled } from "./idempotency";
import { type MeteredRequest, readMeteredRequest, SseUsage, usageFromJson } from "./metering";
import type { PaymentMetrics } from "./metrics";
import { parsePaymentHeader } from "./paymentHeader";
import { PendingSettlements } from "./pending";
import { facilitatorRefusalStatus, isRejection, type Rejection, rejection } from "./reasons";
import { ReplayGuard } from "./replay";
import {
  type OfferRequirements,
  offerPayments,
  offerSchemes,
  requirementsFor,
  resourceDescription,
  type UptoTerms,
} from "./requirements";
import { type Refusal, receiptHeader, withheldResponse, writeRefusal } from "./responses";

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

/** Where a paid request stands once the gate has checked it, before anything is proxied. */
export type GateVerdict =
  | { readonly kind: "required"; readonly message: string }
  /** Refused by the gateway, with a reason from its table (replays and an unreachable facilitator included). */
  | { readonly kind: "rejected"; readonly rejection: Rejection }
  /** Refused by the facilitator, with its reason (a bad signature, no Permit2 allowance …). */
  | { readonly kind: "refused"; readonly reason: string; readonly message: string }
  | { readonly kind: "verified"; readonly payment: AcceptedPayment; readonly payer: string | undefined }
  /** A channel deposit or voucher, checked by channels.ts (the voucher locally). */
  | { readonly kind: "channel"; readonly match: ChannelPaymentMatch; readonly payer: string | undefined };

/** The `outcome` label of x402_requests_total. */
type Outcome =
  | "payment_required"
  | "rejected"
  | "facilitator_unavailable"
  | "served"
  /** A retry of a settled payment (same payment-identifier), answered from its kept response. */
  | "served_again"
  | "settle_failed"
  | "settle_pending"
  | "upstream_failed";

const PAYMENT_HEADERS = ["payment-signature", "x-payment"] as const;

/** An `upto` offer reads the request body (to size the maximum) up to this many bytes. */
export const MAX_METERED_REQUEST_BYTES = 1 << 20;
/** The largest body of a request paid with a payment-identifier (its digest is what a retry must match). */
export const MAX_IDENTIFIED_REQUEST_BYTES = 1 << 20;

/** An identified payment, with the request body the gate read for it (sent upstream from memory). */
type Identified = IdentifiedPayment & { readonly body?: Buffer };

/** A non-streamed metered answer is read whole (for its usage) up to this many bytes. */
const MAX_METERED_RESPONSE_BYTES = 32 << 20;

/** A request to an `upto` offer: its body as read (and as sent upstream) and its token cap. */
interface MeteredCall {
  /** The request's body as received. */
  readonly raw: Buffer;
  readonly request: MeteredRequest;
  readonly tokenCap: bigint;
  readonly terms: UptoTerms;
}

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

  constructor(private readonly opts: X402GateOptions) {
    this.payers = opts.payerLimiter ?? new PayerLimiter();
    this.pending = new PendingSettlements({
      facilitator: opts.facilitator,
      metrics: opts.metrics,
      log: opts.log,
      ...(opts.pendingRetryMs !== undefined ? { retryMs: opts.pendingRetryMs } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
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
    const metered = offerSchemes(offer.spec).includes("upto") ? await this.meteredCall(req) : undefined;
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
    const channel = this.opts.channels ? decideChannelPayment(req.headers, requirements) : undefined;
    let corrective: OfferRequirements | undefined;
    const verdict: GateVerdict = channel
      ? await this.verifyChannel(channel, offer, requirements, (r) => {
          corrective = r;
        })
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
      if (verdict.kind === "channel")
        await this.opts.channels
          ?.cancel(verdict.match.payload as PaymentPayload, verdict.match.requirement as PaymentRequirements)
          .catch(() => undefined);
      this.opts.metrics.failed.inc({ offer: offer.name, reason: "payer_rate_limited" });
      req.resume();
      res.setHeader("retry-after", String(limited.retryAfterSeconds));
      sendJson(res, 429, { error: "payer_rate_limited", message: limited.message });
      return { outcome: "rejected" };
    }
    if (verdict.kind === "channel")
      return {
        outcome: await this.serveChannel(
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
    return { outcome: this.refuse(req, res, offer, route, corrective ?? requirements, verdict) };
  }

  /** Writes the refusal of a request that is not proxied (the 402 with its terms). */
  private refuse(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    offer: HeldOffer,
    route: GatedRoute,
    requirements: OfferRequirements,
    verdict: Exclude<GateVerdict, { kind: "verified" | "channel" }>,
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
      verified = await this.timed("verify", () => this.opts.facilitator.verify(payload, requirement));
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
        error: describe(err),
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

  /**
   * A channel payment: a malformed or mismatched one is refused here, the rest is checked by
   * channels.ts. A voucher on a stale base is refused with the channel's state in the 402
   * (`setCorrective`), from which the buyer's client re-signs.
   */
  private async verifyChannel(
    channel: ChannelPaymentMatch | Rejection,
    offer: HeldOffer,
    requirements: OfferRequirements,
    setCorrective: (r: OfferRequirements) => void,
  ): Promise<GateVerdict> {
    if (!("payload" in channel)) return { kind: "rejected", rejection: channel };
    const channels = this.opts.channels!;
    let verdict: Awaited<ReturnType<ChannelPayments["verify"]>>;
    try {
      verdict = await channels.verify(
        channel.payload as PaymentPayload,
        channel.requirement as PaymentRequirements,
        laneTerms(offer, channel.requirement.network, channel.requirement.asset),
      );
    } catch (err) {
      this.opts.log("x402: channel verify failed", {
        level: "error",
        offer: offer.name,
        error: describe(err),
      });
      return {
        kind: "rejected",
        rejection: rejection(
          "facilitator_unavailable",
          "the channel could not be checked (its state or the facilitator is unreachable); nothing was charged, try again later",
        ),
      };
    }
    if (verdict.ok) return { kind: "channel", match: channel, payer: verdict.payer };
    const fixed = verdict.corrective;
    if (fixed)
      setCorrective({
        ...requirements,
        v2: requirements.v2.map((r) => (r === channel.requirement ? (fixed as typeof r) : r)),
      });
    return { kind: "refused", reason: verdict.reason, message: verdict.message };
  }

  /**
   * Proxies a checked channel payment and charges it on the upstream's 2xx head: the voucher is
   * committed to the channel's durable state (a deposit is settled on chain) before any body byte
   * is sent. Not 2xx: nothing is charged and the channel's reservation is released.
   */
  private async serveChannel(
    match: ChannelPaymentMatch,
    offer: HeldOffer,
    proxy: ProxyFn,
    requestId: string | string[] | undefined,
    /** The request's body when the gate read it (an identified payment's). */
    body: Buffer | undefined,
  ): Promise<Outcome> {
    const channels = this.opts.channels!;
    const payload = match.payload as PaymentPayload;
    const requirement = match.requirement as PaymentRequirements;
    const { metrics } = this.opts;
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
            error: describe(err),
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
    await channels.cancel(payload, requirement).catch(() => undefined);
    return result.status >= 200 && result.status < 300 ? "settle_failed" : "upstream_failed";
  }

  /** The answer to a request that is not proxied; refusals are counted by reason. */
  private refusal(
    verdict: Exclude<GateVerdict, { kind: "verified" | "channel" }>,
    offerName: string,
  ): Refusal {
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
    verdict: Extract<GateVerdict, { kind: "verified" }>,
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
            const outcome = await this.respondMetered(
              upstream,
              res,
              verdict,
              offer,
              requestId,
              state,
              metered,
              keep,
            );
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
            receipt = await this.settle(verdict, offerName, requestId, state);
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

  /**
   * Reads the body of a request to an `upto` offer (bounded) and sizes its maximum; the
   * facilitator's upto signers come from its /supported (read by the gateway's FacilitatorWatch).
   * A facilitator without upto leaves the 402 at `exact`.
   */
  private async meteredCall(req: http.IncomingMessage): Promise<MeteredCall | "too_large"> {
    const raw = await readBounded(req, MAX_METERED_REQUEST_BYTES);
    if (raw === "too_large") return raw;
    const request = readMeteredRequest(raw);
    const tokenCap = uptoTokenCap({ maxTokens: request.maxTokens, bodyBytes: raw.length });
    return {
      raw,
      request,
      tokenCap,
      terms: { tokenCap, facilitators: this.opts.uptoFacilitators?.() ?? new Map() },
    };
  }

  /**
   * The `upto` answer: the upstream's usage decides the charge, so settlement follows the body.
   * A JSON answer is read whole, settled, then sent with PAYMENT-RESPONSE (withheld, like
   * `exact`, when settlement fails). A stream is passed on as it comes, its usage chunk noted,
   * and settled at its end; the receipt is then an HTTP trailer, PAYMENT-RESPONSE. A non-2xx
   * answer is passed on and not charged.
   */
  private async respondMetered(
    upstream: http.IncomingMessage,
    res: http.ServerResponse,
    verdict: Extract<GateVerdict, { kind: "verified" }>,
    offer: HeldOffer,
    requestId: string | string[] | undefined,
    state: { pending: boolean },
    metered: MeteredCall,
    keep: boolean,
  ): Promise<ProxyOutcome & { settled: boolean; receipt: Record<string, string> }> {
    const status = upstream.statusCode ?? 502;
    const headers = stripHopByHop(upstream.headers);
    const requirement = wire(verdict.payment).requirement;
    if (status < 200 || status >= 300) {
      res.writeHead(status, headers);
      upstream.pipe(res);
      await finished(res);
      return {
        status,
        completed: res.writableFinished,
        clientAborted: !res.writableFinished,
        settled: false,
        receipt: {},
      };
    }
    const priced = offerPayments(offer.spec).find(
      (p) =>
        p.network === requirement.network &&
        p.asset.address.toLowerCase() === requirement.asset.toLowerCase(),
    );
    if (!priced) throw new Error(`no payment option of ${offer.name} matches the verified requirement`);
    const maximum = BigInt(requirement.amount);
    const charge = (tokens: bigint | undefined) => uptoCharge(priced, maximum, metered.tokenCap, tokens);
    const streaming = /^text\/event-stream/i.test(String(upstream.headers["content-type"] ?? ""));
    delete headers["content-length"];
    if (!streaming) {
      const body = await readAll(upstream, MAX_METERED_RESPONSE_BYTES);
      const receipt = await this.settle(verdict, offer.name, requestId, state, charge(usageFromJson(body)));
      const sent = { ...headers, ...receipt, "content-length": String(body.length) };
      res.writeHead(status, sent);
      res.end(body);
      await finished(res);
      return {
        status,
        completed: res.writableFinished,
        clientAborted: !res.writableFinished,
        settled: true,
        receipt,
        ...(keep && res.writableFinished
          ? { kept: body.length > this.paid.maxResponseBytes ? "too_large" : { status, headers: sent, body } }
          : {}),
      };
    }
    res.writeHead(status, { ...headers, trailer: "PAYMENT-RESPONSE" });
    res.flushHeaders();
    const usage = new SseUsage();
    // A copy of the stream for a retry of the same payment, while it stays under the bound.
    let copy: Buffer[] | undefined = keep ? [] : undefined;
    let copied = 0;
    try {
      for await (const chunk of upstream) {
        usage.push(chunk as Buffer);
        if (copy) {
          copied += (chunk as Buffer).length;
          if (copied > this.paid.maxResponseBytes) copy = undefined;
          else copy.push(chunk as Buffer);
        }
        if (!res.write(chunk)) await Promise.race([once(res, "drain"), once(res, "close")]);
        if (res.destroyed) break;
      }
    } catch {
      // The upstream broke off: what it reported so far (usually nothing) decides the charge.
    }
    // Settled even when the buyer hung up: the upstream did the work up to then.
    const due = charge(usage.end());
    let receipt: Record<string, string>;
    let settled = true;
    try {
      receipt = await this.settle(verdict, offer.name, requestId, state, due);
    } catch (err) {
      // The stream was delivered; the failure is logged and counted by settle.
      settled = false;
      receipt = err instanceof GateResponse ? pick(err.headers, "payment-response") : {};
    }
    if (!res.destroyed) {
      res.addTrailers(receipt);
      res.end();
      await finished(res);
    }
    const completed = res.writableFinished;
    return {
      status,
      completed,
      clientAborted: !completed,
      settled,
      receipt,
      // Kept whole: the receipt, a trailer here, is a header in the retry's answer.
      ...(keep && completed
        ? {
            kept: copy
              ? { status, headers: { ...headers, ...receipt }, body: Buffer.concat(copy) }
              : "too_large",
          }
        : {}),
    };
  }

  /** Settles and returns the receipt header; throws the response that replaces the upstream's otherwise. */
  private async settle(
    verdict: Extract<GateVerdict, { kind: "verified" }>,
    offerName: string,
    requestId: string | string[] | undefined,
    state: { pending: boolean },
    metered?: UptoCharge,
  ): Promise<Record<string, string>> {
    const { payment, payer } = verdict;
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
      this.pending.follow({
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
      settlement = await this.timed("settle", () => this.opts.facilitator.settle(payload, requirement));
    } catch (err) {
      // Only a facilitator that was never reached certainly sent nothing; a timeout or a broken
      // answer may come after the settlement went out.
      if (!neverReached(err)) throw pending(undefined, {}, describe(err));
      log("x402: settle unreachable; response withheld", { level: "error", error: describe(err) });
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

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const end = this.opts.metrics.facilitatorDuration.startTimer({ op });
    try {
      return await fn();
    } finally {
      end();
    }
  }
}

/** An offer's batch-settlement claim thresholds, in atomic units of the paid asset. */
function laneTerms(offer: HeldOffer, network: string, asset: string): LaneTerms {
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

/** The payload and requirement as the facilitator client takes them (v1 and v2 alike). */
function wire(payment: AcceptedPayment): { payload: PaymentPayload; requirement: PaymentRequirements } {
  return {
    payload: payment.matched.payload as PaymentPayload,
    requirement: payment.matched.requirement as PaymentRequirements,
  };
}

/** Connection-level failures before any byte reached the facilitator: nothing was sent. */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

function neverReached(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_CONNECTED.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

function finished(res: http.ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.once("finish", resolve);
    res.once("close", resolve);
  });
}

/** Whether a request says it carries a body (RFC 9112 §6.3: a length, or a transfer coding). */
function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * A request's body, up to `max` bytes. Over that, the rest is left to drain (the stream is not
 * destroyed, so the refusal still reaches the client) and the answer is "too_large".
 */
function readBounded(req: http.IncomingMessage, max: number): Promise<Buffer | "too_large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
      else {
        over = true;
        chunks.length = 0;
        resolve("too_large");
      }
    });
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

async function readAll(stream: http.IncomingMessage, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > max) {
      stream.destroy();
      throw new Error(`the upstream's answer is over ${max} bytes; a metered (upto) answer is read whole`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function pick(headers: Record<string, string>, name: string): Record<string, string> {
  const value = headers[name];
  return value === undefined ? {} : { [name]: value };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
