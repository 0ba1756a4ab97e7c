/**
 * Reading a buyer's payment from request headers and checking it against what the offer asks,
 * before anything reaches the facilitator. Pure. Every rejection carries the HTTP status, a
 * machine-readable reason and a sentence saying what to fix.
 */
import type { IncomingHttpHeaders } from "node:http";
import type {
  PaymentPayloadV1,
  PaymentPayloadV2,
  PaymentRequirementsV1,
  PaymentRequirementsV2,
} from "@x402/core/schemas";
import { toCaip2 } from "../../api/chains";
import { checkPayloadV1, checkPayloadV2 } from "./payloadSchema";
import { type Rejection, rejection as reject } from "./reasons";
import type { OfferRequirements } from "./requirements";

/** Payment headers longer than this are refused (a real one is about 1 KiB). */
export const MAX_PAYMENT_HEADER_BYTES = 8192;
/** An authorization that expires sooner than this cannot be settled reliably. */
export const MIN_VALIDITY_SECONDS = 6;

export type ParsedPayment =
  | { version: 2; header: "payment-signature"; payload: PaymentPayloadV2 }
  | { version: 1; header: "x-payment"; payload: PaymentPayloadV1 };

/** A payment that answers one of the offer's requirements, with the transfer it binds. */
export type Matched =
  | { version: 2; payload: PaymentPayloadV2; requirement: PaymentRequirementsV2; binding: Binding }
  | { version: 1; payload: PaymentPayloadV1; requirement: PaymentRequirementsV1; binding: Binding };

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The last header decoded for each request's headers object: the gate reads the payment more
 * than once per request (payment identifier, channel or exact decision), and decoding it (base64,
 * JSON, the library's schema) was a tenth of a channel payment's CPU. Keyed by the object and
 * checked against the header's text, so a changed header is decoded again.
 */
const decoded = new WeakMap<
  IncomingHttpHeaders,
  { isV2: boolean; raw: string; result: ParsedPayment | Rejection }
>();

/** Finds and decodes the payment header; undefined when the request carries none. */
export function parsePaymentHeader(headers: IncomingHttpHeaders): ParsedPayment | Rejection | undefined {
  const v2 = single(headers["payment-signature"]);
  const v1 = single(headers["x-payment"]);
  const raw = v2 ?? v1;
  if (raw === undefined) return undefined;
  const isV2 = v2 !== undefined;
  const known = decoded.get(headers);
  if (known?.isV2 === isV2 && known.raw === raw) return known.result;
  const result = decodePaymentHeader(raw, isV2);
  decoded.set(headers, { isV2, raw, result });
  return result;
}

function decodePaymentHeader(raw: string, isV2: boolean): ParsedPayment | Rejection {
  const header = isV2 ? "PAYMENT-SIGNATURE" : "X-PAYMENT";
  if (raw.length > MAX_PAYMENT_HEADER_BYTES) {
    return reject("payment_header_too_large", `${header} is over ${MAX_PAYMENT_HEADER_BYTES} bytes`);
  }
  const text = raw.trim();
  if (!/^[A-Za-z0-9+/=_-]+$/.test(text)) {
    return reject("malformed_payment", `${header} must be base64-encoded JSON`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text, "base64").toString("utf8"));
  } catch {
    return reject("malformed_payment", `${header} is not base64-encoded JSON`);
  }
  const version = (json as { x402Version?: unknown })?.x402Version;
  if (isV2) {
    if (version !== 2)
      return reject(
        "invalid_x402_version",
        `PAYMENT-SIGNATURE carries x402Version ${describeValue(version)}; it must be 2 (use X-PAYMENT for v1)`,
      );
    const checked = checkPayloadV2(json);
    if (!checked.ok)
      return reject(
        "invalid_payload",
        `PAYMENT-SIGNATURE is not an x402 v2 payment payload: ${checked.message}`,
      );
    return { version: 2, header: "payment-signature", payload: checked.payload };
  }
  if (version !== 1)
    return reject(
      "invalid_x402_version",
      `X-PAYMENT carries x402Version ${describeValue(version)}; it must be 1 (use PAYMENT-SIGNATURE for v2)`,
    );
  const checked = checkPayloadV1(json);
  if (!checked.ok)
    return reject("invalid_payload", `X-PAYMENT is not an x402 v1 payment payload: ${checked.message}`);
  return { version: 1, header: "x-payment", payload: checked.payload };
}

/** Longest description of a buyer's value in a refusal (the value is the buyer's to choose). */
const DESCRIBED_VALUE_CHARS = 40;

/**
 * A value from the buyer's JSON, as JSON and cut short, for a refusal. Not String(): JSON can
 * carry an object that String() cannot convert (`{"toString": false}` throws), and a refusal
 * must not become a 500.
 */
function describeValue(value: unknown): string {
  const text = value === undefined ? "undefined" : JSON.stringify(value);
  return text.length > DESCRIBED_VALUE_CHARS ? `${text.slice(0, DESCRIBED_VALUE_CHARS)}…` : text;
}

const same = (a: string | undefined, b: string | undefined) =>
  (a ?? "").toLowerCase() === (b ?? "").toLowerCase();

/** The fields of an exact-EVM payload that bind the transfer (EIP-3009 or Permit2). */
export interface Binding {
  to?: string | undefined;
  value?: string | undefined;
  token?: string | undefined;
  validAfter?: string | undefined;
  validBefore?: string | undefined;
  nonce?: string | undefined;
  from?: string | undefined;
  /** Why the payload cannot be read (the schemas leave `payload` untyped), e.g. a non-string field. */
  malformed?: string | undefined;
}

const fieldsOf = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;

export function bindingOf(payload: Record<string, unknown>): Binding {
  let malformed: string | undefined;
  /** `obj[key]` when it is a string; notes the first field of another type. */
  const text = (obj: Record<string, unknown> | undefined, key: string, name: string) => {
    const value = obj?.[key];
    if (value === undefined || typeof value === "string") return value;
    malformed ??= `payload.${name} must be a string`;
    return undefined;
  };
  // The facilitator turns these into uint256 with BigInt(): anything but decimal digits would
  // make it throw (a 500) instead of refusing the payment, so it is refused here first.
  const uint = (obj: Record<string, unknown> | undefined, key: string, name: string) => {
    const value = text(obj, key, name);
    if (value === undefined || /^[0-9]{1,78}$/.test(value)) return value;
    malformed ??= `payload.${name} must be a decimal integer`;
    return undefined;
  };
  /** `obj[key]` when it is 0x-prefixed hex of `digits` digits (any length when omitted). */
  const hex = (obj: Record<string, unknown> | undefined, key: string, name: string, digits?: number) => {
    const value = text(obj, key, name);
    const shape = digits === undefined ? /^0x[0-9a-fA-F]*$/ : new RegExp(`^0x[0-9a-fA-F]{${digits}}$`);
    if (value === undefined || shape.test(value)) return value;
    malformed ??= `payload.${name} must be 0x-prefixed hex${digits === undefined ? "" : ` of ${digits} digits`}`;
    return undefined;
  };
  const address = (obj: Record<string, unknown> | undefined, key: string, name: string) =>
    hex(obj, key, name, 40);
  if (
    payload.signature === undefined ||
    typeof payload.signature !== "string" ||
    !/^0x[0-9a-fA-F]+$/.test(payload.signature)
  )
    return { malformed: "payload.signature must be a 0x-prefixed hex signature" };
  const auth = fieldsOf(payload.authorization);
  const permit = fieldsOf(payload.permit2Authorization);
  // A transfer key with a non-object value would be read as absent here while x402's facilitator
  // picks its transfer method by the key's presence alone (and then throws on the missing fields).
  for (const [key, fields] of [
    ["authorization", auth],
    ["permit2Authorization", permit],
  ] as const) {
    if (key in payload && !fields) return { malformed: `payload.${key} must be an object` };
  }
  // One transfer per payment: a payload with both would be checked as one and settled as the other.
  if (auth && permit)
    return { malformed: "the payload carries both authorization and permit2Authorization: send one" };
  if (auth) {
    return {
      to: address(auth, "to", "authorization.to"),
      value: uint(auth, "value", "authorization.value"),
      validAfter: uint(auth, "validAfter", "authorization.validAfter"),
      validBefore: uint(auth, "validBefore", "authorization.validBefore"),
      nonce: hex(auth, "nonce", "authorization.nonce", 64),
      from: address(auth, "from", "authorization.from"),
      malformed,
    };
  }
  if (permit) {
    const permitted = fieldsOf(permit.permitted);
    const witness = fieldsOf(permit.witness);
    return {
      to: address(witness, "to", "permit2Authorization.witness.to"),
      value: uint(permitted, "amount", "permit2Authorization.permitted.amount"),
      token: address(permitted, "token", "permit2Authorization.permitted.token"),
      validAfter: uint(witness, "validAfter", "permit2Authorization.witness.validAfter"),
      validBefore: uint(permit, "deadline", "permit2Authorization.deadline"),
      nonce: uint(permit, "nonce", "permit2Authorization.nonce"),
      from: address(permit, "from", "permit2Authorization.from"),
      malformed,
    };
  }
  return {};
}

function checkBinding(
  binding: Binding,
  req: { payTo: string; amount: string; asset: string },
  now: number,
): Rejection | undefined {
  if (binding.malformed !== undefined) return reject("invalid_payload", binding.malformed);
  if (binding.to === undefined || binding.value === undefined) {
    return reject("invalid_payload", "the payload has no EIP-3009 authorization or Permit2 authorization");
  }
  if (!same(binding.to, req.payTo))
    return reject(
      "recipient_mismatch",
      `the payment pays ${binding.to}, but this offer is paid to ${req.payTo}`,
    );
  if (binding.value !== req.amount)
    return reject(
      "amount_mismatch",
      `the payment is for ${binding.value} atomic units; this offer costs exactly ${req.amount}`,
    );
  if (binding.token !== undefined && !same(binding.token, req.asset))
    return reject("asset_mismatch", `the payment is in ${binding.token}; this offer accepts ${req.asset}`);
  if (binding.validAfter !== undefined && Number(binding.validAfter) > now) {
    return reject(
      "not_yet_valid",
      `the authorization is valid only after ${binding.validAfter} (now ${now})`,
    );
  }
  if (binding.validBefore !== undefined && Number(binding.validBefore) < now + MIN_VALIDITY_SECONDS) {
    return reject(
      "expired",
      `the authorization expired (or expires within ${MIN_VALIDITY_SECONDS}s): validBefore ${binding.validBefore}, now ${now}`,
    );
  }
  return undefined;
}

/**
 * Picks the offer's requirement that the payment answers, checking every field the buyer
 * signed: scheme, network, asset, recipient, exact amount and validity window.
 */
export function matchPayment(
  parsed: ParsedPayment,
  offer: OfferRequirements,
  now: number,
): Matched | Rejection {
  if (parsed.version === 2) {
    const accepted = parsed.payload.accepted;
    const schemes = [...new Set(offer.v2.map((r) => r.scheme))];
    if (!schemes.includes(accepted.scheme))
      return reject(
        "unsupported_scheme",
        `scheme "${accepted.scheme}" is not accepted; use ${schemes.map((x) => `"${x}"`).join(" or ")}`,
      );
    const onNetwork = offer.v2.filter((r) => r.scheme === accepted.scheme && r.network === accepted.network);
    if (onNetwork.length === 0)
      return reject(
        "invalid_network",
        `network ${accepted.network} is not accepted for "${accepted.scheme}"; accepted: ${offer.v2
          .filter((r) => r.scheme === accepted.scheme)
          .map((r) => r.network)
          .join(", ")}`,
      );
    const requirement = onNetwork.find((r) => same(r.asset, accepted.asset));
    if (!requirement)
      return reject("asset_mismatch", `asset ${accepted.asset} is not accepted on ${accepted.network}`);
    if (!same(accepted.payTo, requirement.payTo))
      return reject(
        "recipient_mismatch",
        `accepted.payTo ${accepted.payTo} is not this offer's ${requirement.payTo}`,
      );
    if (accepted.amount !== requirement.amount)
      return reject(
        "amount_mismatch",
        requirement.scheme === "upto"
          ? `accepted.amount ${accepted.amount} differs from this request's upto maximum ${requirement.amount} (it follows the request's max_tokens and size: sign the 402 of this same request)`
          : `accepted.amount ${accepted.amount} differs from the price ${requirement.amount}`,
      );
    const binding = bindingOf(parsed.payload.payload);
    const bad = checkBinding(binding, requirement, now);
    return bad ?? { version: 2, payload: parsed.payload, requirement, binding };
  }
  const p = parsed.payload;
  if (p.scheme !== "exact")
    return reject("unsupported_scheme", `scheme "${p.scheme}" is not accepted; use "exact"`);
  let network: string;
  try {
    network = toCaip2(p.network);
  } catch {
    return reject("invalid_network", `network "${p.network}" is unknown`);
  }
  const requirement = offer.v1.find((r) => toCaip2(r.network) === network);
  if (!requirement)
    return reject(
      "invalid_network",
      `network ${p.network} is not accepted from x402 v1 buyers; accepted: ${offer.v1.map((r) => r.network).join(", ") || "none (this offer is paid through Permit2, which needs x402 v2)"}`,
    );
  const binding = bindingOf(p.payload);
  const bad = checkBinding(
    binding,
    { payTo: requirement.payTo, amount: requirement.maxAmountRequired, asset: requirement.asset },
    now,
  );
  return bad ?? { version: 1, payload: p, requirement, binding };
}

/** A key that identifies one signed authorization, for replay protection. */
export function replayKey(matched: Matched): string | undefined {
  const b = matched.binding;
  if (!b.nonce) return undefined;
  return `${matched.requirement.asset.toLowerCase()}:${(b.from ?? "").toLowerCase()}:${b.nonce.toLowerCase()}`;
}
