import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { chargePerRequest, pricedForRoute } from "../../api/pricing";
import type { ServiceOfferSpec } from "../../api/resources";
import { type AuthorizationState, authorizationOf, unusableFrom } from "../../controller/buyer/authorization";
import { checkBudget } from "../../controller/buyer/budget";
import { SpendLedger } from "../../controller/buyer/ledger";
import { outcomeOf, UnconfirmedPayments } from "../../controller/buyer/unconfirmed";
import { decidePayment } from "../../controller/payments/decision";
import {
  bindingOf,
  matchPayment,
  parsePaymentHeader,
  replayKey,
} from "../../controller/payments/paymentHeader";
import {
  FACILITATOR_REASON_STATUS,
  facilitatorRefusalStatus,
  isRejection,
  REJECTION_STATUS,
} from "../../controller/payments/reasons";
import { ReplayGuard } from "../../controller/payments/replay";
import { requirementsFor } from "../../controller/payments/requirements";
import { at } from "../harness/assertions";
import { tempDir } from "../harness/tempDirs";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const ASSET = {
  address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  symbol: "USDC",
  decimals: 6,
  transferMethod: "eip3009" as const,
  eip712Name: "USDC",
  eip712Version: "2",
};
const spec: ServiceOfferSpec = {
  type: "http",
  upstream: { url: "http://127.0.0.1:1", healthPath: "/health" },
  payment: {
    scheme: "exact",
    network: "eip155:84532",
    payTo: PAY_TO,
    asset: ASSET,
    price: { perRequest: "0.001" },
    maxTimeoutSeconds: 300,
  },
  path: "/services/x",
};
const NOW = 1_800_000_000;
const b64 = (x: unknown) => Buffer.from(JSON.stringify(x)).toString("base64");

function v2Payment(overrides: { accepted?: object; authorization?: object } = {}) {
  const reqs = requirementsFor(spec, "https://s/services/x");
  return {
    x402Version: 2,
    accepted: { ...reqs.v2[0], ...overrides.accepted },
    payload: {
      signature: `0x${"11".repeat(65)}`,
      authorization: {
        from: "0x1111111111111111111111111111111111111111",
        to: PAY_TO,
        value: "1000",
        validAfter: "0",
        validBefore: String(NOW + 300),
        nonce: `0x${"ab".repeat(32)}`,
        ...overrides.authorization,
      },
    },
  };
}

describe("x402 requirements", () => {
  it("a route's own price prices the 402 of that route only", () => {
    const priced: ServiceOfferSpec = {
      ...spec,
      routes: [{ path: "/premium", gate: "paid", price: { perRequest: "0.05" } }],
    };
    const route = at(priced.routes ?? [], 0);
    assert.equal(at(requirementsFor(pricedForRoute(priced, route), "u").v2, 0).amount, "50000");
    assert.equal(at(requirementsFor(pricedForRoute(priced, undefined), "u").v2, 0).amount, "1000");
    assert.equal(pricedForRoute(priced, { path: "/a", gate: "paid" }), priced, "no own price: the offer's");
  });

  it("prices per request exactly, in both wire shapes", () => {
    const reqs = requirementsFor(spec, "https://s/services/x");
    assert.deepEqual(
      { network: at(reqs.v2, 0).network, amount: at(reqs.v2, 0).amount, extra: at(reqs.v2, 0).extra },
      {
        network: "eip155:84532",
        amount: "1000",
        extra: { name: "USDC", version: "2", assetTransferMethod: "eip3009" },
      },
    );
    assert.equal(at(reqs.v1, 0).network, "base-sepolia");
    assert.equal(at(reqs.v1, 0).maxAmountRequired, "1000");
    assert.equal(at(reqs.v1, 0).resource, "https://s/services/x");
  });

  it("charges perMTok on a fixed 1,000-token basis, rounded up", () => {
    assert.equal(chargePerRequest({ ...spec.payment, price: { perMTok: "2" } }), 2000n);
    assert.equal(chargePerRequest({ ...spec.payment, price: { perMTok: "0.0001" } }), 1n, "never free");
  });

  it("lists every accepted payment", () => {
    const multi = {
      ...spec,
      payments: [{ ...spec.payment, network: "eip155:8453", price: { perRequest: "0.002" } }],
    };
    assert.deepEqual(
      requirementsFor(multi, "u").v2.map((r) => [r.network, r.amount]),
      [
        ["eip155:84532", "1000"],
        ["eip155:8453", "2000"],
      ],
    );
  });
});

describe("payment headers", () => {
  const reqs = requirementsFor(spec, "https://s/services/x");
  const match = (payment: unknown, header = "payment-signature") => {
    const parsed = parsePaymentHeader({ [header]: b64(payment) });
    assert.ok(parsed && !isRejection(parsed), JSON.stringify(parsed));
    return matchPayment(parsed, reqs, NOW);
  };

  it("accepts a payment that matches every signed field", () => {
    const m = match(v2Payment());
    assert.ok(!isRejection(m));
    assert.equal(
      replayKey(m),
      `${ASSET.address.toLowerCase()}:0x1111111111111111111111111111111111111111:0x${"ab".repeat(32)}`,
    );
  });

  it("names what is wrong", () => {
    const reasons = [
      v2Payment({ accepted: { amount: "999" } }),
      v2Payment({ authorization: { value: "999" } }),
      v2Payment({ authorization: { to: "0x2222222222222222222222222222222222222222" } }),
      v2Payment({ accepted: { network: "eip155:1" } }),
      v2Payment({ accepted: { asset: "0x3333333333333333333333333333333333333333" } }),
      v2Payment({ accepted: { scheme: "upto" } }),
      v2Payment({ authorization: { validBefore: String(NOW + 2) } }),
      v2Payment({ authorization: { validAfter: String(NOW + 60) } }),
    ].map((p) => {
      const m = match(p);
      return isRejection(m) ? m.reason : "accepted";
    });
    assert.deepEqual(reasons, [
      "amount_mismatch",
      "amount_mismatch",
      "recipient_mismatch",
      "invalid_network",
      "asset_mismatch",
      "unsupported_scheme",
      "expired",
      "not_yet_valid",
    ]);
  });

  it("maps v1 legacy names to the CAIP-2 requirement", () => {
    const v1 = { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: v2Payment().payload };
    const m = match(v1, "x-payment");
    assert.ok(!isRejection(m) && m.version === 1 && m.requirement.network === "base-sepolia");
  });

  it("offers Permit2 assets to v2 buyers only, and binds a Permit2 payload's witness and token", () => {
    const permit2Asset = {
      ...ASSET,
      address: "0x4200000000000000000000000000000000000042",
      transferMethod: "permit2" as const,
    };
    const mixed: ServiceOfferSpec = {
      ...spec,
      payments: [{ ...spec.payment, network: "eip155:8453", asset: permit2Asset }],
    };
    const reqs = requirementsFor(mixed, "https://s/services/x");
    assert.deepEqual(
      reqs.v2.map((r) => [r.network, r.extra?.assetTransferMethod]),
      [
        ["eip155:84532", "eip3009"],
        ["eip155:8453", "permit2"],
      ],
    );
    assert.deepEqual(
      reqs.v1.map((r) => r.network),
      ["base-sepolia"],
      "x402 v1 has no Permit2",
    );
    assert.equal(
      reqs.extensions?.eip2612GasSponsoring,
      undefined,
      "no gas sponsoring without an EIP-2612 token",
    );
    const sponsored = requirementsFor(
      {
        ...mixed,
        payments: [{ ...spec.payment, network: "eip155:8453", asset: { ...permit2Asset, eip2612: true } }],
      },
      "u",
      ["eip2612GasSponsoring"],
    );
    assert.ok(
      sponsored.extensions?.eip2612GasSponsoring,
      "an EIP-2612 Permit2 token declares eip2612GasSponsoring",
    );
    const v1OnBase = { x402Version: 1, scheme: "exact", network: "base", payload: v2Payment().payload };
    const refused = matchPayment(parsePaymentHeader({ "x-payment": b64(v1OnBase) }) as never, reqs, NOW);
    assert.ok(isRejection(refused) && refused.reason === "invalid_network");

    const permit2Payment = (witnessTo: string, token: string) => ({
      x402Version: 2,
      accepted: reqs.v2[1],
      payload: {
        signature: `0x${"11".repeat(65)}`,
        permit2Authorization: {
          from: "0x1111111111111111111111111111111111111111",
          spender: "0x402085c248EeA27D92E8b30b2C58ed07f9E20001",
          permitted: { token, amount: "1000" },
          nonce: "42",
          deadline: String(NOW + 300),
          witness: { to: witnessTo, validAfter: "0" },
        },
      },
    });
    const ok = matchPayment(
      parsePaymentHeader({ "payment-signature": b64(permit2Payment(PAY_TO, permit2Asset.address)) }) as never,
      reqs,
      NOW,
    );
    assert.ok(!isRejection(ok), JSON.stringify(ok));
    assert.equal(
      replayKey(ok),
      `${permit2Asset.address.toLowerCase()}:0x1111111111111111111111111111111111111111:42`,
    );
    const redirected = matchPayment(
      parsePaymentHeader({
        "payment-signature": b64(
          permit2Payment("0x000000000000000000000000000000000000dEaD", permit2Asset.address),
        ),
      }) as never,
      reqs,
      NOW,
    );
    assert.ok(isRejection(redirected) && redirected.reason === "recipient_mismatch");
    const otherToken = matchPayment(
      parsePaymentHeader({ "payment-signature": b64(permit2Payment(PAY_TO, ASSET.address)) }) as never,
      reqs,
      NOW,
    );
    assert.ok(isRejection(otherToken) && otherToken.reason === "asset_mismatch");
  });

  it("refuses malformed, oversized and wrong-version headers with 400/402", () => {
    const status = (headers: Record<string, string>) => {
      const r = parsePaymentHeader(headers);
      return isRejection(r) ? [r.status, r.reason] : r;
    };
    assert.equal(parsePaymentHeader({}), undefined);
    assert.deepEqual(status({ "payment-signature": "%%%" }), [400, "malformed_payment"]);
    assert.deepEqual(status({ "payment-signature": "A".repeat(9000) }), [400, "payment_header_too_large"]);
    assert.deepEqual(status({ "payment-signature": b64({ x402Version: 1 }) }), [402, "invalid_x402_version"]);
    assert.deepEqual(status({ "x-payment": b64({ x402Version: 2 }) }), [402, "invalid_x402_version"]);
    // A version JSON can carry but String() cannot convert (found by the property test): refused,
    // not thrown (a throw here was a 500 for the buyer), and named without echoing all of it.
    for (const header of ["payment-signature", "x-payment"]) {
      const odd = parsePaymentHeader({
        [header]: b64({ x402Version: { toString: false, pad: "x".repeat(500) } }),
      });
      assert.ok(isRejection(odd), header);
      assert.deepEqual([odd.status, odd.reason], [402, "invalid_x402_version"]);
      assert.match(odd.message, /x402Version \{"toString":false,/);
      assert.ok(odd.message.length < 250, `the message stays short: ${odd.message.length}`);
    }
    assert.deepEqual(status({ "payment-signature": b64({ x402Version: 2, accepted: {} }) }), [
      400,
      "invalid_payload",
    ]);
  });
});

describe("payment bindings", () => {
  it("refuses malformed signatures, addresses, nonces, amounts and validity bounds before any facilitator sees them", () => {
    const signature = `0x${"11".repeat(65)}`;
    const auth = {
      to: PAY_TO,
      value: "1000",
      validAfter: "0",
      validBefore: "9",
      nonce: `0x${"01".repeat(32)}`,
      from: PAY_TO,
    };
    assert.equal(bindingOf({ signature, authorization: auth }).malformed, undefined);
    for (const field of ["value", "validAfter", "validBefore"]) {
      const binding = bindingOf({ signature, authorization: { ...auth, [field]: "[jdraW!1" } });
      assert.equal(binding.malformed, `payload.authorization.${field} must be a decimal integer`);
    }
    assert.match(bindingOf({ signature: null, authorization: auth }).malformed ?? "", /payload\.signature/);
    const badFrom = bindingOf({ signature, authorization: { ...auth, from: "0x12" } });
    assert.match(badFrom.malformed ?? "", /authorization\.from/);
    const badNonce = bindingOf({ signature, authorization: { ...auth, nonce: "0x01" } });
    assert.match(badNonce.malformed ?? "", /authorization\.nonce/);
    // Found by the interop fuzz test (seed -1177350839): the facilitator took this for Permit2 and threw.
    for (const value of [false, null, "x", 1]) {
      assert.equal(
        bindingOf({ signature, authorization: auth, permit2Authorization: value }).malformed,
        "payload.permit2Authorization must be an object",
      );
      assert.equal(
        bindingOf({ signature, authorization: value }).malformed,
        "payload.authorization must be an object",
      );
    }
  });
});

describe("payment decision", () => {
  const reqs = requirementsFor(spec, "https://s/services/x");

  it("asks for payment, refuses with a reason, or accepts with the binding read once", () => {
    const required = decidePayment({}, reqs, NOW);
    assert.equal(required.kind, "required");
    // A person reads the token's symbol, the decimal amount and the network's name, not atomic
    // units of an address on a CAIP-2 id.
    assert.equal(
      required.kind === "required" ? required.message : "",
      "this route costs 0.001 USDC on Base Sepolia (testnet) per request; pay with an x402 client (https://x402.org)",
    );

    const refused = decidePayment(
      { "payment-signature": b64(v2Payment({ accepted: { amount: "1" } })) },
      reqs,
      NOW,
    );
    assert.deepEqual(refused.kind === "rejected" && [refused.rejection.status, refused.rejection.reason], [
      402,
      "amount_mismatch",
    ]);

    const accepted = decidePayment({ "payment-signature": b64(v2Payment()) }, reqs, NOW);
    assert.ok(accepted.kind === "accepted", JSON.stringify(accepted));
    assert.equal(accepted.payment.expiresAt, NOW + 300, "replays are remembered until validBefore");
    assert.equal(accepted.payment.replayKey, replayKey(accepted.payment.matched));
    assert.equal(accepted.payment.matched.binding.from, "0x1111111111111111111111111111111111111111");
    assert.equal(accepted.payment.network, "eip155:84532");

    const { payload } = v2Payment();
    const v1 = decidePayment(
      { "x-payment": b64({ x402Version: 1, scheme: "exact", network: "base-sepolia", payload }) },
      reqs,
      NOW,
    );
    assert.ok(v1.kind === "accepted", JSON.stringify(v1));
    assert.equal(v1.payment.network, "eip155:84532", "labels use CAIP-2 whatever version the buyer spoke");
  });

  it("refuses a second use of an authorization until it expires or is released", () => {
    const guard = new ReplayGuard();
    assert.equal(guard.claim("k", NOW + 10, NOW), true);
    assert.equal(guard.claim("k", NOW + 10, NOW + 5), false);
    guard.release("k");
    assert.equal(guard.claim("k", NOW + 10, NOW + 5), true, "released (not charged): may be retried");
    assert.equal(guard.claim("k", NOW + 20, NOW + 11), true, "expired claims are forgotten");
    assert.equal(guard.claim(undefined, NOW, NOW), true, "no nonce, nothing to remember");
  });

  it("refuses with exactly the reasons and statuses README's Payments section lists", () => {
    const readme = fs.readFileSync(path.join(__dirname, "../../README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Payments\n")).split(/\n## /)[1] ?? "";
    // "  - 402: `a`, `b`, … or the facilitator's reason (…)" with continuation lines.
    const groups = [...section.matchAll(/^ {2}- (\d{3}): ((?:.|\n {4})*)/gm)];
    assert.ok(groups.length > 0, "README's Payments section lists refusals as '  - <status>: `reason`, …'");
    const documented: Record<string, number> = {};
    for (const [, status, text] of groups) {
      const ours = (text ?? "").split("facilitator's")[0] ?? "";
      for (const [, reason] of ours.matchAll(/`([a-z0-9_]+)`/g)) documented[reason ?? ""] = Number(status);
    }
    // The gateway's own reasons, and the facilitator's reasons whose status is not 402.
    assert.deepEqual(documented, { ...REJECTION_STATUS, ...FACILITATOR_REASON_STATUS });
  });

  it("passes the facilitator's refusals on as 402, except a missing Permit2 allowance (412)", () => {
    assert.equal(facilitatorRefusalStatus("permit2_allowance_required"), 412);
    assert.equal(facilitatorRefusalStatus("invalid_exact_evm_payload_signature"), 402);
    assert.equal(facilitatorRefusalStatus("constructor"), 402, "an own key, not the prototype's");
  });
});

describe("buyer budget and ledger", () => {
  const purchase = {
    endpoint: "https://s/services/x",
    model: "m",
    payment: { network: "eip155:84532", decimals: 6, maxPrice: "0.002" },
    budget: { maxPerRequest: "0.0015", maxPerDay: "0.003", maxTotal: "0.004" },
  };
  const offer = (amount: bigint) => ({ network: "eip155:84532", asset: ASSET.address, amount });

  it("enforces price, per-request, per-day and total limits", () => {
    const none = { total: 0n, today: 0n, settledCount: 0 };
    assert.ok(checkBudget(purchase, offer(1000n), none).ok);
    assert.equal(checkBudget(purchase, offer(2500n), none).reason, "over_max_price");
    assert.equal(checkBudget(purchase, offer(1600n), none).reason, "over_max_per_request");
    assert.equal(
      checkBudget(purchase, offer(1000n), { total: 2500n, today: 2500n, settledCount: 2 }).reason,
      "over_max_per_day",
    );
    assert.equal(
      checkBudget(purchase, offer(1000n), { total: 3500n, today: 0n, settledCount: 3 }).reason,
      "over_max_total",
    );
    assert.equal(
      checkBudget(purchase, { ...offer(1000n), network: "eip155:8453" }, none).reason,
      "wrong_network",
    );
  });

  it("persists reservations; unresolved ones count as spent after a restart; released ones do not", () => {
    const file = path.join(tempDir("ledger-"), "ledger.jsonl");
    const day = 1_800_000_000_000;
    const ledger = new SpendLedger(file);
    ledger.reserve("a", "p", 1000n, day);
    ledger.settle("a", "0xtx", day);
    ledger.reserve("b", "p", 500n, day);
    ledger.release("b", day);
    ledger.reserve("c", "p", 250n, day); // crash before the outcome
    ledger.reserve("d", "other", 7n, day - 86_400_000);
    ledger.close();
    fs.appendFileSync(file, '{"kind":"settled","id":"c"'); // a torn last line

    const reopened = new SpendLedger(file);
    assert.deepEqual(reopened.spend("p", day), { total: 1250n, today: 1250n, settledCount: 1 });
    assert.deepEqual(reopened.spend("other", day), { total: 7n, today: 0n, settledCount: 0 });
    reopened.settle("c", "0xtx2", day);
    reopened.close();
    assert.deepEqual(
      new SpendLedger(file).spend("p", day),
      { total: 1250n, today: 1250n, settledCount: 2 },
      "appends after a torn line stay readable",
    );
    fs.writeFileSync(file, 'garbage\n{"kind":"released","id":"a","at":1}\n');
    assert.throws(() => new SpendLedger(file), /corrupt at line 1/);
  });

  it("adds payments found on chain once, by transaction, dated by their block", () => {
    const file = path.join(tempDir("ledger-"), "ledger.jsonl");
    const day = 1_800_000_000_000;
    const ledger = new SpendLedger(file);
    ledger.reserve("a", "p", 1000n, day);
    ledger.settle("a", "0xAA", day);
    const onChain = [
      { tx: "0xaa", amount: 1000n, at: day }, // the ledger's own settlement: not again
      { tx: "0xbb", amount: 1000n, at: day - 86_400_000 }, // lost with an earlier volume
    ];
    assert.equal(ledger.recover("p", onChain), 1);
    assert.equal(ledger.recover("p", onChain), 0, "recovering twice adds nothing");
    assert.deepEqual(ledger.spend("p", day), { total: 2000n, today: 1000n, settledCount: 2 });
    ledger.close();
    assert.deepEqual(new SpendLedger(file).spend("p", day), { total: 2000n, today: 1000n, settledCount: 2 });

    // A fresh ledger (the volume is gone) learns everything from the chain.
    const fresh = new SpendLedger(path.join(path.dirname(file), "fresh.jsonl"));
    assert.equal(fresh.recover("p", onChain), 2);
    assert.deepEqual(fresh.spend("p", day), { total: 2000n, today: 1000n, settledCount: 2 });
  });

  it("does not count again a payment it already counts without a transaction (unconfirmed, or settled from the chain's authorization state)", () => {
    const file = path.join(tempDir("ledger-"), "ledger.jsonl");
    const day = 1_800_000_000_000;
    const ledger = new SpendLedger(file);
    ledger.reserve("a", "p", 1000n, day);
    ledger.settle("a", undefined, day); // the chain said "used"; its transaction is unknown
    ledger.reserve("b", "p", 2000n, day); // sent, outcome not known yet: counted as spent
    const onChain = [
      { tx: "0xa1", amount: 1000n, at: day },
      { tx: "0xb2", amount: 2000n, at: day },
      { tx: "0xc3", amount: 1000n, at: day - 86_400_000 }, // a third, lost with an earlier volume
    ];
    assert.equal(ledger.recover("p", onChain), 1);
    assert.equal(ledger.spend("p", day).total, 4000n);
  });

  it("matches an upto payment the chain settled below its reserved maximum, and settles it at the chain's amount", () => {
    const file = path.join(tempDir("ledger-"), "ledger.jsonl");
    const day = 1_800_000_000_000;
    const ledger = new SpendLedger(file);
    const permit2 = (nonce: string) => ({
      kind: "permit2" as const,
      network: "eip155:84532",
      owner: PAY_TO as `0x${string}`,
      nonce,
      deadline: "1800000300",
    });
    ledger.reserve("small", "p", 500n, day);
    ledger.authorize("small", permit2("1"));
    ledger.reserve("big", "p", 3000n, day); // an upto maximum, sent without a receipt
    ledger.authorize("big", permit2("2"));
    ledger.reserve("eip3009", "p", 5000n, day); // exact by EIP-3009 settles its amount, never less
    const onChain = [{ tx: "0xd4", amount: 620n, at: day }];
    assert.equal(ledger.recover("p", onChain), 0, "no payment is new: the upto one is known");
    assert.equal(ledger.spend("p", day).total, 500n + 620n + 5000n);
    assert.deepEqual(
      ledger.unconfirmed().map((u) => u.id),
      ["small", "eip3009"],
    );
    ledger.close();
    assert.equal(new SpendLedger(file).spend("p", day).total, 6120n, "durable");
  });
});

describe("buyer: payments sent without a receipt", () => {
  const FROM = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
  const eip3009Payload = {
    x402Version: 2,
    payload: {
      signature: "0x",
      authorization: {
        from: FROM.toLowerCase(),
        to: PAY_TO,
        value: "1000",
        validAfter: "0",
        validBefore: "1800000300",
        nonce: `0x${"ab".repeat(32)}`,
      },
    },
  };
  const permit2Payload = {
    x402Version: 2,
    payload: {
      signature: "0x",
      permit2Authorization: { from: FROM, nonce: "123456789012345678901234567890", deadline: "1800000300" },
    },
  };
  const req = { network: "eip155:84532", asset: ASSET.address.toLowerCase() };

  it("reads the authorization the chain records: EIP-3009 (token, from, nonce) and Permit2 (owner, nonce)", () => {
    const a = authorizationOf(eip3009Payload, req)!;
    assert.deepEqual(a, {
      kind: "eip3009",
      network: "eip155:84532",
      token: ASSET.address,
      from: FROM,
      nonce: `0x${"ab".repeat(32)}`,
      validBefore: "1800000300",
    });
    assert.equal(unusableFrom(a), 1800000300n);
    const p = authorizationOf(permit2Payload, req)!;
    assert.equal(p.kind, "permit2");
    assert.equal(unusableFrom(p), 1800000301n, "Permit2 accepts block.timestamp == deadline");
    assert.equal(authorizationOf({ payload: { signature: "0x" } }, req), undefined);
  });

  it("keeps a sent payment spent until the chain says used (settled) or expired unused (released)", async () => {
    const file = path.join(tempDir("ledger-"), "ledger.jsonl");
    const ledger = new SpendLedger(file);
    const auth = authorizationOf(eip3009Payload, req)!;
    for (const id of ["used", "expired", "open", "no-rpc", "unreadable", "unsigned"]) {
      ledger.reserve(id, id === "no-rpc" ? "offline" : "p", 1000n);
      if (id !== "unsigned")
        ledger.authorize(id, { ...auth, nonce: `0x${id.padEnd(64, "0")}` as `0x${string}` });
    }
    const states: Record<string, AuthorizationState> = {
      used: "used",
      expired: "expired_unused",
      open: "open",
    };
    const resolved: string[] = [];
    const unconfirmed = new UnconfirmedPayments({
      ledger,
      rpcUrlFor: (purchase) => (purchase === "offline" ? undefined : "http://rpc"),
      log: () => undefined,
      onResolved: (purchase) => resolved.push(purchase),
      stateOf: async (_rpc, a) => {
        const id = a.kind === "eip3009" ? a.nonce.slice(2).replace(/0+$/, "") : "";
        if (id === "unreadable") throw new Error("rpc down");
        return states[id] ?? "open";
      },
    });
    await unconfirmed.resolve();
    assert.deepEqual(
      ledger
        .unconfirmed()
        .map((u) => u.id)
        .sort(),
      ["no-rpc", "open", "unreadable", "unsigned"],
    );
    assert.deepEqual(resolved, ["p", "p"]);
    ledger.close();
    const reopened = new SpendLedger(file);
    assert.deepEqual(reopened.spend("p", Date.now()), { total: 4000n, today: 4000n, settledCount: 1 });
    assert.deepEqual(
      reopened.unconfirmed().find((u) => u.id === "open")?.authorization?.kind,
      "eip3009",
      "the authorization survives a restart, so it can still be looked up",
    );
    reopened.close();
    assert.equal(outcomeOf("open"), "unconfirmed");
  });
});
