/**
 * Reading a seller's 402 and checking it against what a PurchaseRequest declared. Pure helpers
 * (parse and evaluate) plus the probe itself.
 */

import { decodePaymentRequiredHeader } from "@x402/core/http";
import { chainInfo } from "../../api/chains";
import type { ProbeReason } from "../../api/conditions";
import { compareDecimal, fromAtomic } from "../../api/money";
import type { PurchaseRequestSpec } from "../../api/resources";
import { type OfferedPayment, readOffered, termsMismatch } from "../payments/purchaseTerms";
import { errorMessage } from "../shared/log";
import { CONTROLLER_USER_AGENT, fetchWithTimeout } from "../shared/outbound";

export interface Parsed402 {
  readonly x402Version: number;
  readonly accepts: readonly OfferedPayment[];
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Parses a 402: the v2 PAYMENT-REQUIRED header (base64 JSON) when present, else the body's
 * `accepts[]` (v1 and v2 bodies). Returns undefined when neither carries payment options.
 */
export function parse402(header: string | null, body: string): Parsed402 | undefined {
  let doc: Record<string, unknown> | undefined;
  if (header) {
    try {
      doc = record(decodePaymentRequiredHeader(header));
    } catch {
      doc = undefined;
    }
  }
  if (!doc) {
    try {
      doc = record(JSON.parse(body));
    } catch {
      return undefined;
    }
  }
  if (!doc || !Array.isArray(doc.accepts)) return undefined;
  const accepts = doc.accepts.map(readOffered).filter((a): a is OfferedPayment => a !== undefined);
  return { x402Version: typeof doc.x402Version === "number" ? doc.x402Version : 1, accepts };
}

export type ProbeVerdict =
  | { readonly ok: true; readonly reason: "Validated"; readonly message: string; readonly price: string }
  | {
      readonly ok: false;
      readonly reason: Exclude<ProbeReason, "Validated" | "InvalidSpec">;
      readonly message: string;
    };

function decimalsFor(option: OfferedPayment, declared: PurchaseRequestSpec["payment"]): number | undefined {
  if (option.decimals !== undefined) return option.decimals;
  // The purchase names its token and that token's decimals: the buyer's budget reads prices so.
  if (declared.asset && declared.asset.toLowerCase() === option.asset.toLowerCase()) return declared.decimals;
  const usdc = option.caip2 ? chainInfo(option.caip2)?.usdc : undefined;
  return usdc && usdc.address.toLowerCase() === option.asset.toLowerCase() ? usdc.decimals : undefined;
}

/**
 * Checks the seller's options against the declared network, asset and maximum price. `channels`:
 * the purchase also pays batch-settlement options (spec.channels).
 */
export function evaluate402(
  parsed: Parsed402,
  declared: PurchaseRequestSpec["payment"],
  channels = false,
): ProbeVerdict {
  const offered = parsed.accepts
    .map((a) => `${a.scheme} ${a.amountAtomic} of ${a.asset} on ${a.caip2 ?? a.network}`)
    .join("; ");
  if (parsed.accepts.length === 0) {
    return {
      ok: false,
      reason: "ProbeError",
      message: "the seller answered 402 but offered no payment options (accepts[] is empty)",
    };
  }
  // The buyer pays only what termsMismatch accepts: the probe judges with the same function.
  const judged = parsed.accepts.map((a) => ({ a, why: termsMismatch(declared, a, channels) }));
  const payable = judged.filter((j) => j.why === undefined).map((j) => j.a);
  if (payable.length === 0) {
    return judged.some((j) => j.why?.reason === "wrong_asset")
      ? {
          ok: false,
          reason: "AssetMismatch",
          message: `the seller does not accept asset ${declared.asset} on ${declared.network}; it offers: ${offered}`,
        }
      : {
          ok: false,
          reason: "NetworkMismatch",
          message: `the seller does not accept payment on ${declared.network}; it offers: ${offered}`,
        };
  }
  const priced = payable
    .map((a) => ({ a, decimals: decimalsFor(a, declared) }))
    .filter((x): x is { a: OfferedPayment; decimals: number } => x.decimals !== undefined)
    .map((x) => ({ ...x, price: fromAtomic(x.a.amountAtomic, x.decimals) }))
    .sort((x, y) => compareDecimal(x.price, y.price));
  const [cheapest] = priced;
  if (!cheapest) {
    return {
      ok: false,
      reason: "PricingMismatch",
      message: `cannot tell the token decimals of ${payable.map((a) => a.asset).join(", ")}; declare payment.asset as a known token`,
    };
  }
  if (compareDecimal(cheapest.price, declared.maxPrice) > 0) {
    return {
      ok: false,
      reason: "PricingMismatch",
      message: `the seller asks ${cheapest.price} per request, more than maxPrice ${declared.maxPrice}`,
    };
  }
  return {
    ok: true,
    reason: "Validated",
    message: `the seller asks ${cheapest.price} of ${cheapest.a.asset} on ${declared.network} (≤ maxPrice ${declared.maxPrice})`,
    price: cheapest.price,
  };
}

type ProbeFailure = Extract<ProbeVerdict, { ok: false }>;

/**
 * Calls the seller without payment: POST a minimal chat request (what the buyer will send),
 * falling back to GET if POST is not allowed. A payment-gated seller answers 402 with its terms.
 */
export async function requestTerms(
  endpoint: string,
  model: string,
  timeoutMs: number,
  userAgent = CONTROLLER_USER_AGENT,
): Promise<{ readonly ok: true; readonly terms: Parsed402 } | ProbeFailure> {
  const headers = { "user-agent": userAgent, accept: "application/json" };
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "ping" }], max_tokens: 1 });
  let res: Response;
  try {
    res = await fetchWithTimeout(
      endpoint,
      { method: "POST", headers: { ...headers, "content-type": "application/json" }, body },
      timeoutMs,
    );
    if (res.status === 405) {
      await res.body?.cancel().catch(() => undefined);
      res = await fetchWithTimeout(endpoint, { method: "GET", headers }, timeoutMs);
    }
  } catch (err) {
    return {
      ok: false,
      reason: "ProbeError",
      message: `probing ${endpoint} failed: ${errorMessage(err)}`,
    };
  }
  const text = await res.text().catch(() => "");
  if (res.status >= 200 && res.status < 300) {
    return {
      ok: false,
      reason: "NotPaymentGated",
      message: `${endpoint} answered ${res.status} without payment; it is not an x402 seller`,
    };
  }
  if (res.status !== 402) {
    return {
      ok: false,
      reason: "ProbeError",
      message: `${endpoint} answered ${res.status} without payment; expected 402 Payment Required`,
    };
  }
  const parsed = parse402(res.headers.get("payment-required"), text);
  if (!parsed) {
    return {
      ok: false,
      reason: "ProbeError",
      message: `${endpoint} answered 402 without payment requirements (no PAYMENT-REQUIRED header or accepts[] body)`,
    };
  }
  return { ok: true, terms: parsed };
}

/** Probes `endpoint` (the purchase's seller) and checks its terms against the purchase. */
export async function probeSeller(
  endpoint: string,
  spec: PurchaseRequestSpec,
  timeoutMs: number,
): Promise<ProbeVerdict> {
  const result = await requestTerms(endpoint, spec.model, timeoutMs);
  return result.ok ? evaluate402(result.terms, spec.payment, spec.channels !== undefined) : result;
}
