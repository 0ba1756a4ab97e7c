/**
 * fast-check generators for what a hostile or broken buyer sends: payment objects with fields
 * overwritten by arbitrary JSON, and header values (raw strings, base64 of anything, base64 of
 * those payments). Shared by the unit property tests and the gateway's property test.
 */
import fc from "fast-check";

export const b64 = (x: unknown) =>
  Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64");

/** Any JSON value, including the awkward ones (huge numbers, nested arrays, odd keys). */
export const json = fc.jsonValue({ maxDepth: 4 });

/** Paths into a payment object (v1 or v2, EIP-3009 or Permit2), to overwrite with anything. */
export const PAYMENT_FIELDS = [
  ["x402Version"],
  ["accepted"],
  ["accepted", "scheme"],
  ["accepted", "network"],
  ["accepted", "asset"],
  ["accepted", "payTo"],
  ["accepted", "amount"],
  ["payload"],
  ["payload", "signature"],
  ["payload", "authorization"],
  ["payload", "authorization", "to"],
  ["payload", "authorization", "value"],
  ["payload", "authorization", "from"],
  ["payload", "authorization", "validAfter"],
  ["payload", "authorization", "validBefore"],
  ["payload", "authorization", "nonce"],
  ["payload", "permit2Authorization"],
  ["payload", "permit2Authorization", "witness"],
  ["payload", "permit2Authorization", "permitted", "amount"],
  ["scheme"],
  ["network"],
] as const;

/** Sets `value` at `path`, creating objects on the way (a non-object on the way is replaced). */
export function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] ?? ""] = value;
}

/** One of the `valid` payments with 1-3 fields overwritten by arbitrary JSON. */
export function mutatedPaymentOf(...valid: (() => object)[]) {
  return fc
    .tuple(
      fc.constantFrom(...valid),
      fc.array(fc.tuple(fc.constantFrom(...PAYMENT_FIELDS), json), { minLength: 1, maxLength: 3 }),
    )
    .map(([make, edits]) => {
      const payment = make() as Record<string, unknown>;
      for (const [path, value] of edits) setPath(payment, path, value);
      return payment;
    });
}

/** Characters an HTTP client can put in a header value (visible ASCII, inner spaces). */
const sendable = (v: string) => /^([\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?)?$/.test(v);

/** Header values: raw strings, base64 of arbitrary JSON or text, base64 of mutated payments. */
export function headerValueOf(payments: fc.Arbitrary<Record<string, unknown>>) {
  return fc.oneof(
    fc.string({ maxLength: 200 }).filter(sendable),
    fc.string({ unit: "binary", maxLength: 200 }).map(b64),
    json.map(b64),
    payments.map(b64),
    payments.map((p) => b64(p).replace(/=+$/, "")),
    fc.constant("A".repeat(9000)),
  );
}
