/**
 * The gateway's zod 4 payment payload schemas (payloadSchema.ts) against @x402/core's zod 3
 * ones: on valid payloads and on payloads with fields overwritten by awkward and arbitrary JSON,
 * the fast schema must accept exactly what the library accepts, with the same parsed data. (A
 * payload the fast schema refuses is handed to the library anyway, so the test also runs the fast
 * schemas alone: a refusal the library would not make is a slow path, and is reported too.)
 */
import * as assert from "node:assert/strict";
import { PaymentPayloadV1Schema, PaymentPayloadV2Schema } from "@x402/core/schemas";
import fc from "fast-check";
import { checkPayloadV1, checkPayloadV2, fastPayloadSchemas } from "../../controller/payments/payloadSchema";
import { json, setPath } from "../harness/paymentArbitraries";

const ADDRESS = `0x${"ab".repeat(20)}`;
const voucherV2 = () => ({
  x402Version: 2,
  resource: { url: "http://seller.test/services/chat/v1", description: "chat", mimeType: "application/json" },
  accepted: {
    scheme: "batch-settlement",
    network: "eip155:31337",
    amount: "1000",
    asset: ADDRESS,
    payTo: ADDRESS,
    maxTimeoutSeconds: 60,
    extra: { receiverAuthorizer: ADDRESS, withdrawDelay: 900 },
  },
  payload: {
    type: "voucher",
    channelConfig: { payer: ADDRESS, withdrawDelay: 900, salt: `0x${"00".repeat(32)}` },
    voucher: {
      channelId: `0x${"cd".repeat(32)}`,
      maxClaimableAmount: "5000",
      signature: `0x${"ef".repeat(65)}`,
    },
  },
});
const exactV2 = () => ({
  x402Version: 2,
  accepted: {
    scheme: "exact",
    network: "eip155:84532",
    amount: "1000",
    asset: ADDRESS,
    payTo: ADDRESS,
    maxTimeoutSeconds: 300,
    extra: { name: "USDC", version: "2" },
  },
  payload: { signature: "0x12", authorization: { from: ADDRESS, to: ADDRESS, value: "1000" } },
  extensions: { "payment-identifier": { info: { id: "pay_0123456789abcdef" } } },
});
const exactV1 = () => ({
  x402Version: 1,
  scheme: "exact",
  network: "base-sepolia",
  payload: { signature: "0x12", authorization: { from: ADDRESS, to: ADDRESS, value: "1000" } },
});

const V2_FIELDS = [
  ["x402Version"],
  ["resource"],
  ["resource", "url"],
  ["resource", "description"],
  ["resource", "mimeType"],
  ["resource", "serviceName"],
  ["resource", "tags"],
  ["resource", "iconUrl"],
  ["resource", "unknown"],
  ["accepted"],
  ["accepted", "scheme"],
  ["accepted", "network"],
  ["accepted", "amount"],
  ["accepted", "asset"],
  ["accepted", "payTo"],
  ["accepted", "maxTimeoutSeconds"],
  ["accepted", "extra"],
  ["accepted", "unknown"],
  ["payload"],
  ["payload", "voucher"],
  ["extensions"],
  ["unknown"],
] as const;
const V1_FIELDS = [["x402Version"], ["scheme"], ["network"], ["payload"], ["unknown"]] as const;

/** Values that sit on the schemas' edges (empty, too long, wrong types, null, non-printable), as JSON.parse makes them. */
const AWKWARD: unknown[] = [
  undefined,
  null,
  "",
  "a",
  "ab",
  "a:",
  ":",
  "eip155:1",
  "x".repeat(32),
  "x".repeat(33),
  "x".repeat(2049),
  "tab\there",
  "é",
  0,
  -1,
  0.5,
  1,
  2,
  1e308,
  true,
  [],
  ["a"],
  ["a", "b", "c", "d", "e", "f"],
  [""],
  ["x".repeat(33)],
  [1],
  {},
  { a: 1 },
  JSON.parse(`{"__proto__": {"polluted": true}}`),
  [{}],
];

type Verdict = { ok: boolean; data?: unknown };
const library = (
  schema: typeof PaymentPayloadV2Schema | typeof PaymentPayloadV1Schema,
  input: unknown,
): Verdict => {
  const r = schema.safeParse(input);
  return r.success ? { ok: true, data: r.data } : { ok: false };
};
const ours = (check: typeof checkPayloadV2 | typeof checkPayloadV1, input: unknown): Verdict => {
  const r = check(input);
  return r.ok ? { ok: true, data: r.payload } : { ok: false };
};
const fast = (version: 1 | 2, input: unknown): Verdict => {
  const r = fastPayloadSchemas[version === 2 ? "v2" : "v1"].safeParse(input);
  return r.success ? { ok: true, data: r.data } : { ok: false };
};

function assertSame(version: 1 | 2, input: unknown): void {
  const expected = library(version === 2 ? PaymentPayloadV2Schema : PaymentPayloadV1Schema, input);
  const described = JSON.stringify(input, (_, v) => (v === undefined ? "<undefined>" : v));
  assert.deepEqual(ours(version === 2 ? checkPayloadV2 : checkPayloadV1, input), expected, described);
  // The fast schema alone: the same verdict and data (a difference would be a slow refusal path).
  assert.deepEqual(fast(version, input), expected, `fast schema alone: ${described}`);
}

describe("payment payload schemas (zod 4) against @x402/core's", () => {
  it("accept the valid payloads with the library's parsed data", () => {
    for (const make of [voucherV2, exactV2]) {
      assertSame(2, make());
      assert.equal(checkPayloadV2(make()).ok, true);
    }
    assertSame(1, exactV1());
    assert.equal(checkPayloadV1(exactV1()).ok, true);
  });

  it("give the library's verdict for every awkward value in every field", () => {
    let refused = 0;
    for (const [version, makes, fields] of [
      [2, [voucherV2, exactV2], V2_FIELDS],
      [1, [exactV1], V1_FIELDS],
    ] as const) {
      for (const make of makes)
        for (const field of fields)
          for (const value of AWKWARD) {
            const payment = make() as Record<string, unknown>;
            setPath(payment, field, value);
            assertSame(version, payment);
            if (!library(version === 2 ? PaymentPayloadV2Schema : PaymentPayloadV1Schema, payment).ok)
              refused++;
          }
    }
    // The edges above are mostly refusals: the test is not passing on accepts alone.
    assert.ok(refused > 300, `only ${refused} refusals exercised`);
  });

  it("give the library's verdict for anything at the top level", () => {
    for (const value of [...AWKWARD, "payload", 42, [voucherV2()]]) {
      assertSame(2, value);
      assertSame(1, value);
    }
  });

  it("give the library's verdict for payloads with 1-3 fields overwritten by arbitrary JSON", () => {
    const mutated = (make: () => object, fields: readonly (readonly string[])[]) =>
      fc.array(fc.tuple(fc.constantFrom(...fields), json), { minLength: 1, maxLength: 3 }).map((edits) => {
        const payment = make() as Record<string, unknown>;
        for (const [path, value] of edits) setPath(payment, path, value);
        return payment;
      });
    fc.assert(
      fc.property(fc.oneof(mutated(voucherV2, V2_FIELDS), mutated(exactV2, V2_FIELDS)), (p) =>
        assertSame(2, p),
      ),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(mutated(exactV1, V1_FIELDS), (p) => assertSame(1, p)),
      { numRuns: 200 },
    );
  });

  it("word a refusal as the library does", () => {
    const payment = exactV2() as Record<string, unknown>;
    setPath(payment, ["accepted", "network"], "base");
    const ourMessage = checkPayloadV2(payment);
    const libraryResult = PaymentPayloadV2Schema.safeParse(payment);
    assert.equal(ourMessage.ok, false);
    assert.equal(libraryResult.success, false);
    if (!ourMessage.ok && !libraryResult.success)
      assert.equal(ourMessage.message, libraryResult.error.issues[0]?.message);
  });
});
