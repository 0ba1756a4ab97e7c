/**
 * Property tests (fast-check): whatever a buyer, a seller or a config author sends, the parsers
 * and matchers answer with a value or their own typed error, never with an exception of another
 * kind. Bounded runs; a failure prints the smallest input found.
 */
import * as assert from "node:assert/strict";
import fc from "fast-check";
import type { PurchaseRequestSpec, ServiceOfferSpec } from "../../api/resources";
import {
  matchPayment,
  type ParsedPayment,
  parsePaymentHeader,
  replayKey,
} from "../../controller/payments/paymentHeader";
import { readOffered, termsMismatch } from "../../controller/payments/purchaseTerms";
import { isRejection } from "../../controller/payments/reasons";
import { requirementsFor } from "../../controller/payments/requirements";
import { evaluate402, parse402 } from "../../controller/reconciler/paymentProbe";
import { ConfigError, type ParseContext, parseStackConfig } from "../../program/config/parse";
import { b64, headerValueOf, json, mutatedPaymentOf, setPath } from "../harness/paymentArbitraries";

const RUNS = { numRuns: 200 };
const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NOW = 1_800_000_000;
const spec: ServiceOfferSpec = {
  type: "http",
  upstream: { url: "http://127.0.0.1:1", healthPath: "/health" },
  payment: {
    scheme: "exact",
    network: "eip155:84532",
    payTo: PAY_TO,
    asset: {
      address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      symbol: "USDC",
      decimals: 6,
      transferMethod: "eip3009",
      eip712Name: "USDC",
      eip712Version: "2",
    },
    price: { perRequest: "0.001" },
    maxTimeoutSeconds: 300,
  },
  payments: [
    {
      scheme: "exact",
      network: "eip155:84532",
      payTo: PAY_TO,
      asset: {
        address: "0x4200000000000000000000000000000000000042",
        symbol: "TDOL",
        decimals: 18,
        transferMethod: "permit2",
        eip712Name: "TDOL",
        eip712Version: "1",
      },
      price: { perRequest: "0.5" },
      maxTimeoutSeconds: 300,
    },
  ],
  path: "/services/x",
};
const offer = requirementsFor(spec, "https://seller.example/services/x");

/** A valid v2 payment for the offer's first requirement, as a starting point for mutations. */
const validV2 = () => ({
  x402Version: 2,
  accepted: { ...offer.v2[0] },
  payload: {
    signature: `0x${"11".repeat(65)}`,
    authorization: {
      from: "0x1111111111111111111111111111111111111111",
      to: PAY_TO,
      value: "1000",
      validAfter: "0",
      validBefore: String(NOW + 300),
      nonce: `0x${"ab".repeat(32)}`,
    },
  },
});
const validV1 = () => {
  const { accepted: _, ...rest } = validV2();
  return { ...rest, x402Version: 1, scheme: "exact", network: "base-sepolia" };
};
const mutatedPayment = mutatedPaymentOf(validV2, validV1);
const headerValue = headerValueOf(mutatedPayment);

describe("property tests (fast-check, 200 cases each)", () => {
  it("the payment-header parser never throws: it returns nothing, a payment or a 400/402 rejection", () => {
    fc.assert(
      fc.property(fc.constantFrom("payment-signature", "x-payment"), headerValue, (name, value) => {
        const result = parsePaymentHeader({ [name]: value });
        if (result === undefined) return false; // a header was sent: "no payment" is wrong
        if (isRejection(result)) {
          assert.ok(result.status === 400 || result.status === 402, JSON.stringify(result));
          assert.ok(result.reason && result.message, JSON.stringify(result));
        } else {
          assert.equal(result.version, name === "payment-signature" ? 2 : 1);
        }
        return true;
      }),
      RUNS,
    );
  });

  it("the requirement matcher never throws, and only matches a payment that pays exactly a requirement", () => {
    fc.assert(
      fc.property(mutatedPayment, fc.integer({ min: 0, max: 2 ** 40 }), (payment, now) => {
        const parsed = parsePaymentHeader(
          payment.x402Version === 1 ? { "x-payment": b64(payment) } : { "payment-signature": b64(payment) },
        );
        if (parsed === undefined || isRejection(parsed)) return;
        const matched = matchPayment(parsed as ParsedPayment, offer, now);
        if (isRejection(matched)) {
          assert.ok(matched.status === 400 || matched.status === 402);
          return;
        }
        // A match means the signed transfer pays this offer's recipient its exact price.
        const auth = (matched.payload.payload as { authorization?: { to: string; value: string } })
          .authorization;
        const price =
          matched.version === 2 ? matched.requirement.amount : matched.requirement.maxAmountRequired;
        assert.equal(String(auth?.to).toLowerCase(), PAY_TO.toLowerCase());
        assert.equal(auth?.value, price);
        replayKey(matched);
      }),
      RUNS,
    );
  });

  it("found by the properties: a non-string nonce or two transfers in one payload is refused with 400", () => {
    const refusal = (payment: Record<string, unknown>) => {
      const parsed = parsePaymentHeader({ "payment-signature": b64(payment) });
      assert.ok(parsed && !isRejection(parsed));
      const matched = matchPayment(parsed, offer, NOW);
      return isRejection(matched) ? { status: matched.status, reason: matched.reason } : undefined;
    };
    const nonceObject = validV2();
    setPath(nonceObject, ["payload", "authorization", "nonce"], {});
    assert.deepEqual(refusal(nonceObject), { status: 400, reason: "invalid_payload" });
    const both = validV2();
    setPath(both, ["payload", "permit2Authorization", "permitted", "amount"], []);
    assert.deepEqual(refusal(both), { status: 400, reason: "invalid_payload" });
  });

  const declared: PurchaseRequestSpec["payment"] = {
    network: "eip155:84532",
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    decimals: 6,
    maxPrice: "0.001",
  };
  const requirement = fc.record(
    {
      scheme: fc.oneof(fc.constant("exact"), fc.string()),
      network: fc.oneof(fc.constantFrom("base-sepolia", "eip155:84532", "base", "eip155:8453"), fc.string()),
      asset: fc.oneof(fc.constant(declared.asset!), fc.string()),
      amount: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 80n }).map(String), fc.string(), json),
      maxAmountRequired: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 6n }).map(String), json),
      payTo: json,
      extra: json,
    },
    { requiredKeys: [] },
  );

  it("the purchase matcher (probe and buyer) never throws and accepts a legacy name as its CAIP-2 network", () => {
    fc.assert(
      fc.property(fc.oneof(requirement, json), (raw) => {
        const offered = readOffered(raw);
        if (!offered) return;
        const mismatch = termsMismatch(declared, offered);
        if (mismatch === undefined) {
          assert.equal(offered.caip2, "eip155:84532");
          assert.ok(["base-sepolia", "eip155:84532"].includes(offered.network.trim().toLowerCase()));
        }
        const verdict = evaluate402({ x402Version: 1, accepts: [offered] }, declared);
        assert.ok(
          ["Validated", "PricingMismatch", "NetworkMismatch", "AssetMismatch"].includes(verdict.reason),
        );
        assert.equal(verdict.ok, mismatch === undefined && offered.amountAtomic <= 1000n);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.option(fc.string({ maxLength: 300 })), fc.string({ maxLength: 300 }), (header, body) => {
        const parsed = parse402(header, body);
        if (parsed) evaluate402(parsed, declared);
      }),
      RUNS,
    );
  });

  it("the stack config validator throws only ConfigError, naming a field, for any edit of a good config", () => {
    const ctx: ParseContext = { stack: "dev", secretKeys: new Set(["buyerSignerKey"]) };
    const good = () => ({
      buyerSignerKey: `0x${"59".repeat(32)}`,
      offers: [
        {
          name: "echo",
          type: "http",
          upstream: { url: "http://127.0.0.1:9000", healthPath: "/health" },
          payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: "0.001" } },
          limits: { rps: 5, maxInFlight: 2 },
        },
      ],
      purchases: [
        {
          name: "p",
          endpoint: "https://seller.example/services/x",
          model: "m",
          payment: { network: "base-sepolia", maxPrice: "0.001" },
          budget: { maxPerRequest: "0.001", maxTotal: "1" },
        },
      ],
    });
    assert.doesNotThrow(() => parseStackConfig(good(), ctx), "the starting point is valid");
    const CONFIG_FIELDS = [
      ["offers"],
      ["offers", "0"],
      ["offers", "0", "name"],
      ["offers", "0", "type"],
      ["offers", "0", "upstream"],
      ["offers", "0", "upstream", "url"],
      ["offers", "0", "payment", "network"],
      ["offers", "0", "payment", "payTo"],
      ["offers", "0", "payment", "price"],
      ["offers", "0", "payment", "price", "perRequest"],
      ["offers", "0", "payment", "price", "perMTok"],
      ["offers", "0", "payment", "asset"],
      ["offers", "0", "payment", "maxTimeoutSeconds"],
      ["offers", "0", "limits", "rps"],
      ["offers", "0", "path"],
      ["offers", "0", "routes"],
      ["purchases", "0", "payment", "maxPrice"],
      ["purchases", "0", "payment", "network"],
      ["purchases", "0", "budget", "maxPerRequest"],
      ["purchases", "0", "budget", "maxPerDay"],
      ["cluster"],
      ["tunnel"],
      ["facilitator"],
      ["identity"],
    ] as const;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...CONFIG_FIELDS), json), { minLength: 1, maxLength: 3 }),
        (edits) => {
          const raw = good() as Record<string, unknown>;
          for (const [path, value] of edits) setPath(raw, path, value);
          try {
            parseStackConfig(raw, ctx);
          } catch (err) {
            assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
            assert.ok(err.issues.length > 0);
            for (const issue of err.issues) assert.ok(issue.message, JSON.stringify(issue));
          }
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string(), json), (raw) => {
        try {
          parseStackConfig(raw, ctx);
        } catch (err) {
          assert.ok(err instanceof ConfigError, `threw ${String(err)}`);
        }
      }),
      RUNS,
    );
  });
});
