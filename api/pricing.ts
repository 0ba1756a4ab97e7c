/**
 * What one request costs, in the token's smallest unit: the one pricing function behind the 402
 * (x402 `amount` / v1 `maxAmountRequired`) and every catalog (services.json, openapi.json,
 * skill.md, the storefront). Pure.
 */
import { networkLabel } from "./chains";
import { fromAtomic, toAtomic } from "./money";
import type { OfferScheme, Payment, ServiceOfferSpec } from "./resources";

/**
 * perMTok offers are charged per request on a fixed, documented basis: the price of
 * PER_MTOK_BASIS_TOKENS tokens (1,000), rounded up to the token's smallest unit. The charge is
 * known before the upstream runs, so `exact` payments work and the buyer's worst case is bounded.
 */
export const PER_MTOK_BASIS_TOKENS = 1000n;

/** The atomic amount charged per request for one payment option. */
export function chargePerRequest(payment: Pick<Payment, "price" | "asset">): bigint {
  const { perRequest, perMTok } = payment.price;
  if (perRequest !== undefined) return toAtomic(perRequest, payment.asset.decimals);
  if (perMTok !== undefined) {
    const perMillion = toAtomic(perMTok, payment.asset.decimals);
    return (perMillion * PER_MTOK_BASIS_TOKENS + 999_999n) / 1_000_000n;
  }
  throw new Error("payment has no price");
}

/** What one request costs as a person reads it: "0.00025 USDC" (token symbol, decimal amount). */
export function chargeDisplay(payment: Pick<Payment, "price" | "asset">): string {
  return `${fromAtomic(chargePerRequest(payment), payment.asset.decimals)} ${payment.asset.symbol}`;
}

/** "0.001 USDC on Base Sepolia (testnet)": one payment option, for messages and pages. */
export function describeCharge(payment: Pick<Payment, "price" | "asset" | "network">): string {
  return `${chargeDisplay(payment)} on ${networkLabel(payment.network)}`;
}

/**
 * An `upto` option as a person reads it: "the tokens used at 0.41 USDC per 1M tokens, at most
 * 0.0021 USDC for this request (x402 upto)".
 */
export function describeUpto(payment: Pick<Payment, "price" | "asset">, maximum: bigint): string {
  const rate = payment.price.perMTok ?? "?";
  return `the tokens used at ${rate} ${payment.asset.symbol} per 1M tokens, at most ${fromAtomic(maximum, payment.asset.decimals)} ${payment.asset.symbol} for this request (x402 upto)`;
}

/**
 * The `upto` scheme (perMTok inference offers with `schemes` including "upto"): the buyer signs
 * a maximum, the gateway settles the tokens the upstream reports. The maximum covers the
 * completion the request allows (`max_completion_tokens` or `max_tokens`; UPTO_DEFAULT_MAX_TOKENS
 * when it names none) plus its prompt, bounded by one token per byte of the request body: a
 * byte-level tokenizer never makes more tokens than bytes, and the JSON around the messages
 * outweighs the chat template's few extra tokens.
 */
export const UPTO_DEFAULT_MAX_TOKENS = 4096n;

/** The most tokens a request may be charged for under `upto`. */
export function uptoTokenCap(request: { maxTokens?: number | undefined; bodyBytes: number }): bigint {
  const completion =
    request.maxTokens !== undefined && Number.isSafeInteger(request.maxTokens) && request.maxTokens > 0
      ? BigInt(request.maxTokens)
      : UPTO_DEFAULT_MAX_TOKENS;
  return completion + BigInt(Math.max(0, request.bodyBytes));
}

/** `tokens` at the offer's perMTok price, rounded up to the token's smallest unit. */
export function chargeForTokens(payment: Pick<Payment, "price" | "asset">, tokens: bigint): bigint {
  const { perMTok } = payment.price;
  if (perMTok === undefined) throw new Error("upto needs a perMTok price");
  const perMillion = toAtomic(perMTok, payment.asset.decimals);
  return (perMillion * tokens + 999_999n) / 1_000_000n;
}

/** The maximum a buyer signs for a request allowed `tokenCap` tokens. */
export function uptoMaximum(payment: Pick<Payment, "price" | "asset">, tokenCap: bigint): bigint {
  return chargeForTokens(payment, tokenCap);
}

export interface UptoCharge {
  /** Atomic units to settle: never above the signed maximum. */
  readonly amount: bigint;
  /** The tokens charged for (the reported usage, or the cap when it was over or missing). */
  readonly tokens: bigint;
  /** Why the charge is not the reported usage: "over_maximum" or "usage_missing". */
  readonly capped?: "over_maximum" | "usage_missing";
}

/**
 * What an `upto` request is charged once the upstream has answered: the reported tokens at the
 * offer's price, never more than the signed maximum. An upstream that reports no usage is
 * charged the maximum (what the buyer agreed to as the worst case), and says so in the receipt.
 */
export function uptoCharge(
  payment: Pick<Payment, "price" | "asset">,
  maximum: bigint,
  tokenCap: bigint,
  reportedTokens: bigint | undefined,
): UptoCharge {
  if (reportedTokens === undefined) return { amount: maximum, tokens: tokenCap, capped: "usage_missing" };
  const amount = chargeForTokens(payment, reportedTokens);
  if (reportedTokens > tokenCap || amount > maximum)
    return { amount: maximum, tokens: tokenCap, capped: "over_maximum" };
  return { amount, tokens: reportedTokens };
}

/**
 * How each scheme an offer accepts charges, as catalogs (skill.md, services.json, the
 * storefront) state it; the 402 asks the same amounts (chargePerRequest, uptoMaximum/uptoCharge).
 */
export function schemeCharges(
  schemes: readonly OfferScheme[],
  payment: Pick<Payment, "price" | "asset">,
): { scheme: OfferScheme; charge: string }[] {
  return schemes.map((scheme) =>
    scheme === "batch-settlement"
      ? {
          scheme,
          charge: `batch-settlement: deposit once into a channel (EIP-3009), then sign a cumulative voucher per request, ${chargePerRequest(payment)} atomic units more each time; the seller claims vouchers in batches and refunds what is unused`,
        }
      : scheme === "upto"
        ? {
            scheme,
            charge: `upto: sign a maximum of (max_tokens, or ${UPTO_DEFAULT_MAX_TOKENS} when absent, + one token per request byte) × the perMTok rate; pay usage.total_tokens × the rate, rounded up to the token's unit, never more than signed`,
          }
        : {
            scheme,
            charge:
              payment.price.perMTok !== undefined && payment.price.perRequest === undefined
                ? `exact: ${chargePerRequest(payment)} atomic units per request (the rate for ${PER_MTOK_BASIS_TOKENS} tokens)`
                : `exact: ${chargePerRequest(payment)} atomic units per request`,
          },
  );
}

type Route = NonNullable<ServiceOfferSpec["routes"]>[number];

/**
 * The offer as one of its routes sells it: a route's own `price` replaces the price of every
 * payment option (networks, tokens and payees stay the offer's), its `schemes` the offer's. The
 * 402, the verification and the catalogs all read prices through this, so they agree. Pure.
 */
export function pricedForRoute(spec: ServiceOfferSpec, route: Route | undefined): ServiceOfferSpec {
  if (!route || (route.price === undefined && route.schemes === undefined)) return spec;
  const { price } = route;
  const reprice = (p: Payment): Payment => (price ? { ...p, price } : p);
  return {
    ...spec,
    payment: reprice(spec.payment),
    ...(spec.payments ? { payments: spec.payments.map(reprice) } : {}),
    ...(route.schemes ? { schemes: route.schemes } : {}),
  };
}
