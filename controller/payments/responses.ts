/**
 * The gate's answers as HTTP: what the decision and the facilitator concluded, written to the
 * client. 402s, and the 412 of a payer without a Permit2 allowance, carry the requirements twice
 * (PAYMENT-REQUIRED for x402 v2, a v1 JSON body), so the buyer can act on them; 400 and 503
 * carry `{error, message}`. Nothing here decides anything.
 */
import type * as http from "node:http";
import { encodePaymentRequiredHeader } from "@x402/core/http";
import type { PaymentRequiredV1, PaymentRequiredV2 } from "@x402/core/schemas";
import type { PaymentRequired, SettleResponse } from "@x402/core/types";
import { GateResponse } from "../gateway/paymentGate";
import { isWebBrowser, OfferPaywall } from "./paywall";
import type { OfferRequirements } from "./requirements";

/** What is being sold, for the 402's `resource`. */
export interface PaidResource {
  readonly requirements: OfferRequirements;
  readonly url: string;
  readonly description: string;
}

/** A refusal before anything was proxied: the status, the machine-readable reason and why. */
export interface Refusal {
  readonly status: number;
  readonly error: string;
  readonly message: string;
}

function paymentRequired(resource: PaidResource, error: string) {
  const reqs = resource.requirements;
  const v2: PaymentRequiredV2 = {
    x402Version: 2,
    error,
    resource: { url: resource.url, description: resource.description, mimeType: "application/json" },
    accepts: reqs.v2,
    ...(reqs.extensions ? { extensions: reqs.extensions } : {}),
  };
  const v1: PaymentRequiredV1 = { x402Version: 1, error, accepts: reqs.v1 };
  return { v2, v1 };
}

/** Answers the client without proxying; the request body is drained, never forwarded. */
export function writeRefusal(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  resource: PaidResource,
  refusal: Refusal,
): void {
  req.resume();
  const { status, error, message } = refusal;
  const required = status === 402 || status === 412 ? paymentRequired(resource, error) : undefined;
  // A browser gets the paywall page; API clients the v1 JSON body. Both get PAYMENT-REQUIRED.
  const html =
    required && isWebBrowser(req.headers)
      ? new OfferPaywall({
          prices: resource.requirements.prices,
          metered: resource.requirements.metered,
          refusal: error === "payment_required" ? undefined : message,
        }).generateHtml(required.v2 as PaymentRequired, { currentUrl: resource.url })
      : undefined;
  const body = html ?? JSON.stringify(required ? { ...required.v1, message } : { error, message });
  res.writeHead(status, {
    "content-type": html ? "text/html; charset=utf-8" : "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
    vary: "Accept, User-Agent",
    ...(html ? { "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'" } : {}),
    ...(required ? { "payment-required": encodePaymentRequiredHeader(required.v2 as PaymentRequired) } : {}),
  });
  res.end(body);
}

/** The settlement receipt header: PAYMENT-RESPONSE for v2 buyers, X-PAYMENT-RESPONSE for v1. */
export function receiptHeader(version: 1 | 2, settlement: SettleResponse): Record<string, string> {
  const name = version === 2 ? "payment-response" : "x-payment-response";
  return { [name]: encodeSettlementHeader(settlement) };
}

/**
 * What `@x402/core`'s `encodePaymentResponseHeader` writes (base64 of the receipt's JSON without
 * `extensionResponses`), encoded with Buffer: the library's encoder goes byte by byte through
 * `Array.from` and `btoa`, ~3 % of a channel call's CPU. tests/unit/responses.test.ts holds the
 * two outputs equal.
 */
export function encodeSettlementHeader(settlement: SettleResponse): string {
  const { extensionResponses: _buyerDoesNotSeeThem, ...buyerFacing } = settlement as SettleResponse & {
    extensionResponses?: unknown;
  };
  return Buffer.from(JSON.stringify(buyerFacing), "utf8").toString("base64");
}

/**
 * Replaces the upstream's 2xx when settlement did not happen (the proxy writes it instead of the
 * upstream response, whose body is discarded).
 */
export function withheldResponse(
  status: 402 | 503,
  error: string,
  message: string,
  headers: Record<string, string> = {},
): GateResponse {
  return new GateResponse(
    status,
    { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
    JSON.stringify({ error, message }),
  );
}
