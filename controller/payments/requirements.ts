/**
 * What an offer asks buyers to pay, in both x402 wire shapes: v2 (CAIP-2 networks, `amount`)
 * and v1 (legacy network names, `maxAmountRequired`). Pure: derived from the ServiceOffer spec.
 */
import type { PaymentRequirementsV1, PaymentRequirementsV2 } from "@x402/core/schemas";
import { declareEip2612GasSponsoringExtension } from "@x402/extensions";
import { type Caip2, legacyNetworkName } from "../../api/chains";
import { chargePerRequest, describeCharge, describeUpto, uptoMaximum } from "../../api/pricing";
import type { OfferScheme, Payment, ServiceOfferSpec } from "../../api/resources";
import { EIP2612_GAS_SPONSORING } from "./facilitatorSupport";
import { paymentIdentifierDeclaration } from "./idempotency";

export interface OfferRequirements {
  v2: PaymentRequirementsV2[];
  /** The v1 shape of the EIP-3009 entries only: v1 has no Permit2. */
  v1: PaymentRequirementsV1[];
  /**
   * x402 v2 extensions the 402 declares: payment-identifier (always, optional for the buyer), and
   * eip2612GasSponsoring for EIP-2612 Permit2 assets.
   */
  extensions?: Record<string, unknown>;
  /** Each accepted payment as a person reads it ("0.001 USDC on Base Sepolia (testnet)"), in v2 order. */
  prices: string[];
  /** The `upto` options of this request as a person reads them (describeUpto), when offered. */
  metered?: string[];
}

export function offerPayments(spec: ServiceOfferSpec): Payment[] {
  return [spec.payment, ...(spec.payments ?? [])];
}

/** The schemes an offer's 402 offers (ServiceOffer `schemes`, default exact only). */
export function offerSchemes(spec: ServiceOfferSpec): readonly OfferScheme[] {
  return spec.schemes ?? ["exact"];
}

/**
 * How long a batch-settlement payer must wait to withdraw on its own (the library's minimum,
 * 15 minutes): the gateway claims well within it (ServiceOffer `channels.claimIntervalSeconds`).
 */
export const CHANNEL_WITHDRAW_DELAY_SECONDS = 900;

/** What an `upto` entry needs beyond the offer: the request's token cap and who may settle. */
export interface UptoTerms {
  readonly tokenCap: bigint;
  /** The facilitator address its upto witness must name, per CAIP-2 network (from /supported). */
  readonly facilitators: ReadonlyMap<string, string>;
}

/**
 * A payment's per-request amount and its description, remembered per payment object: the gateway
 * builds requirements for every request, and these two were most of that (decimal parsing and
 * formatting). Offers arrive as new objects when they change; nothing edits one in place.
 */
const chargeMemo = new WeakMap<Payment, { amount: string; described: string }>();

function charge(p: Payment): { amount: string; described: string } {
  let memo = chargeMemo.get(p);
  if (!memo) {
    memo = { amount: chargePerRequest(p).toString(), described: describeCharge(p) };
    chargeMemo.set(p, memo);
  }
  return memo;
}

/**
 * `facilitatorExtensions`: the extensions the facilitator's /supported lists; the 402 declares
 * an extension only when the facilitator that will settle the payment implements it. `upto`:
 * the request's terms, for offers whose `schemes` include "upto". `channelAuthorizers`: the
 * facilitator's batch-settlement receiver authorizer per network (none: no channels offered).
 */
export function requirementsFor(
  spec: ServiceOfferSpec,
  resourceUrl: string,
  facilitatorExtensions: readonly string[] = [],
  upto?: UptoTerms,
  channelAuthorizers?: ReadonlyMap<string, string>,
): OfferRequirements {
  const description = resourceDescription(spec);
  const v2: PaymentRequirementsV2[] = [];
  const v1: PaymentRequirementsV1[] = [];
  const metered: string[] = [];
  for (const p of offerPayments(spec)) {
    const { amount } = charge(p);
    const extra = {
      name: p.asset.eip712Name,
      version: p.asset.eip712Version,
      assetTransferMethod: p.asset.transferMethod,
    };
    if (offerSchemes(spec).includes("exact"))
      v2.push({
        scheme: "exact",
        network: p.network as Caip2,
        amount,
        asset: p.asset.address,
        payTo: p.payTo,
        maxTimeoutSeconds: p.maxTimeoutSeconds,
        extra,
      });
    // upto is Permit2 only (x402's upto proxy), whatever the asset's exact transfer method.
    const facilitatorAddress = upto?.facilitators.get(p.network);
    if (upto && facilitatorAddress && offerSchemes(spec).includes("upto") && p.price.perMTok !== undefined) {
      const maximum = uptoMaximum(p, upto.tokenCap);
      metered.push(describeUpto(p, maximum));
      v2.push({
        scheme: "upto",
        network: p.network as Caip2,
        amount: maximum.toString(),
        asset: p.asset.address,
        payTo: p.payTo,
        maxTimeoutSeconds: p.maxTimeoutSeconds,
        extra: { ...extra, assetTransferMethod: "permit2", facilitatorAddress },
      });
    }
    // batch-settlement: the channel's receiver authorizer is the facilitator's (its /supported);
    // deposits are EIP-3009 authorizations redeemed by x402's deposit collector.
    const receiverAuthorizer = channelAuthorizers?.get(p.network);
    if (
      receiverAuthorizer &&
      offerSchemes(spec).includes("batch-settlement") &&
      p.price.perRequest !== undefined &&
      p.asset.transferMethod === "eip3009"
    )
      v2.push({
        scheme: "batch-settlement",
        network: p.network as Caip2,
        amount,
        asset: p.asset.address,
        payTo: p.payTo,
        maxTimeoutSeconds: p.maxTimeoutSeconds,
        extra: { ...extra, receiverAuthorizer, withdrawDelay: CHANNEL_WITHDRAW_DELAY_SECONDS },
      });
    if (!offerSchemes(spec).includes("exact")) continue;
    // x402 v1's exact-EVM scheme knows only EIP-3009: a v1 buyer cannot pay through Permit2.
    if (p.asset.transferMethod === "permit2") continue;
    v1.push({
      scheme: "exact",
      network: legacyNetworkName(p.network as Caip2),
      maxAmountRequired: amount,
      resource: resourceUrl,
      description,
      mimeType: "application/json",
      payTo: p.payTo,
      maxTimeoutSeconds: p.maxTimeoutSeconds,
      asset: p.asset.address,
      extra,
    });
  }
  // Buyers of an EIP-2612 token need no approve transaction: they sign a permit for Permit2 and
  // the facilitator submits it with the payment (the proxy's settleWithPermit), if it says it can.
  const sponsored =
    facilitatorExtensions.includes(EIP2612_GAS_SPONSORING) &&
    offerPayments(spec).some(
      (p) => (p.asset.transferMethod === "permit2" || offerSchemes(spec).includes("upto")) && p.asset.eip2612,
    );
  const prices = offerPayments(spec).map((p) => charge(p).described);
  // Every paid route accepts a payment-identifier: a retry of the same payment is not charged twice.
  const extensions = {
    ...paymentIdentifierDeclaration(),
    ...(sponsored ? declareEip2612GasSponsoringExtension() : {}),
  };
  return { v2, v1, prices, ...(metered.length > 0 ? { metered } : {}), extensions };
}

export function resourceDescription(spec: ServiceOfferSpec): string {
  return (
    spec.description ?? (spec.type === "inference" ? `Inference: ${spec.model?.name ?? "model"}` : "Paid API")
  );
}
