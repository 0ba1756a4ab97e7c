import * as assert from "node:assert/strict";
import type { PaymentPayloadV2 } from "@x402/core/schemas";
import type { ServiceOfferSpec } from "../../api/resources";
import {
  type IdentifiedPayment,
  identifyPayment,
  PAYMENT_IDENTIFIER,
  PaidResponses,
} from "../../controller/payments/idempotency";
import { isRejection } from "../../controller/payments/reasons";
import { requirementsFor } from "../../controller/payments/requirements";
import { at } from "../harness/assertions";
import { offerObject } from "./runtimeFixtures";

const NOW = 1_800_000_000;
const FROM = "0x1111111111111111111111111111111111111111";

function payment(id: string | undefined, nonce = "ab"): PaymentPayloadV2 {
  return {
    x402Version: 2,
    resource: { url: "https://s/services/x/a", description: "d", mimeType: "application/json" },
    accepted: {
      scheme: "exact",
      network: "eip155:84532",
      amount: "1000",
      asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      payTo: "0x2222222222222222222222222222222222222222",
      maxTimeoutSeconds: 300,
      extra: {},
    },
    payload: {
      signature: `0x${"11".repeat(65)}`,
      authorization: { from: FROM, nonce: `0x${nonce.repeat(32)}` },
    },
    ...(id === undefined
      ? {}
      : { extensions: { [PAYMENT_IDENTIFIER]: { info: { required: false, id }, schema: {} } } }),
  } as PaymentPayloadV2;
}

const identified = (p: PaymentPayloadV2, method = "POST", url = "https://s/services/x/a") => {
  const out = identifyPayment(p, method, url);
  assert.ok(out && !isRejection(out), JSON.stringify(out));
  return out as IdentifiedPayment;
};

describe("payment-identifier (idempotent paid retries)", () => {
  it("every 402 declares the extension, optional for the buyer", () => {
    const spec = offerObject("x").spec as ServiceOfferSpec;
    const ext = requirementsFor(spec, "u").extensions?.[PAYMENT_IDENTIFIER] as {
      info: { required: boolean };
    };
    assert.deepEqual(ext.info, { required: false });
  });

  it("reads the id per payer; the same payment for the same request has the same fingerprint", () => {
    assert.equal(identifyPayment(payment(undefined), "GET", "u"), undefined, "no id: no idempotency");
    const a = identified(payment("pay_0123456789abcdef"));
    assert.equal(a.key, `${FROM}/pay_0123456789abcdef`);
    assert.equal(identified(payment("pay_0123456789abcdef")).fingerprint, a.fingerprint);
    assert.notEqual(identified(payment("pay_0123456789abcdef", "cd")).fingerprint, a.fingerprint);
    assert.notEqual(identified(payment("pay_0123456789abcdef"), "GET").fingerprint, a.fingerprint);
    assert.notEqual(
      identified(payment("pay_0123456789abcdef"), "POST", "https://s/services/x/b").fingerprint,
      a.fingerprint,
    );
  });

  it("the request's body is part of the fingerprint: a retry must send the same bytes", () => {
    const p = payment("pay_0123456789abcdef");
    const withBody = (body?: string) =>
      identifyPayment(
        p,
        "POST",
        "u",
        body === undefined ? undefined : Buffer.from(body),
      ) as IdentifiedPayment;
    const a = withBody('{"prompt":"a"}');
    assert.equal(withBody('{"prompt":"a"}').fingerprint, a.fingerprint, "the same body");
    assert.notEqual(withBody('{"prompt":"b"}').fingerprint, a.fingerprint, "another body");
    assert.notEqual(withBody('{"prompt":"a"} ').fingerprint, a.fingerprint, "one byte more");
    assert.notEqual(withBody().fingerprint, a.fingerprint, "no body");
    assert.equal(withBody("").fingerprint, withBody().fingerprint, "an empty body is no body");
    assert.equal(withBody('{"prompt":"a"}').key, a.key, "the same entry: a conflict, not a new payment");
  });

  it("refuses a malformed identifier with a reason", () => {
    for (const bad of ["short", "has spaces in it!!!", "x".repeat(129)]) {
      const out = identifyPayment(payment(bad), "GET", "u");
      assert.ok(isRejection(out), bad);
      assert.equal(out.reason, "invalid_payment_identifier");
      assert.equal(out.status, 400);
      assert.match(out.message, /16-128 letters, digits/);
    }
  });

  it("first use runs, copies wait, a settled answer serves retries, another payment conflicts", async () => {
    const cache = new PaidResponses();
    const p = identified(payment("pay_0123456789abcdef"));
    assert.equal(cache.lookup(p, NOW).kind, "new");
    const waiting = cache.lookup(p, NOW);
    assert.equal(waiting.kind, "running");
    assert.equal(cache.lookup(identified(payment("pay_0123456789abcdef", "cd")), NOW).kind, "conflict");
    const kept = { status: 200, headers: { "payment-response": "r" }, body: Buffer.from("ok") };
    cache.settle(p.key, { kept });
    await (waiting.kind === "running" ? waiting.done : undefined);
    assert.deepEqual(cache.lookup(p, NOW + 1), { kind: "settled", settled: { kept } });
    assert.equal(cache.lookup(identified(payment("pay_0123456789abcdef", "cd")), NOW).kind, "conflict");
  });

  it("forgets a payment that was not charged, so its retry runs as new", async () => {
    const cache = new PaidResponses();
    const p = identified(payment("pay_0123456789abcdef"));
    cache.lookup(p, NOW);
    const waiting = cache.lookup(p, NOW);
    cache.forget(p.key);
    await (waiting.kind === "running" ? waiting.done : undefined);
    assert.equal(cache.lookup(p, NOW).kind, "new");
  });

  it("is bounded: answers over the size limit are not kept (the receipt is), entries expire, the oldest go first", () => {
    const cache = new PaidResponses({ ttlSeconds: 10, maxResponseBytes: 100, maxBytes: 200 });
    const ids = [
      "pay_aaaaaaaaaaaaaaaa",
      "pay_bbbbbbbbbbbbbbbb",
      "pay_cccccccccccccccc",
      "pay_dddddddddddddddd",
    ];
    const ps = ids.map((id) => identified(payment(id)));
    const big = { status: 200, headers: { "payment-response": "r" }, body: Buffer.alloc(200) };
    cache.lookup(at(ps, 0), NOW);
    cache.settle(at(ps, 0).key, { kept: big });
    const found = cache.lookup(at(ps, 0), NOW);
    assert.ok(found.kind === "settled" && "receipt" in found.settled);
    assert.deepEqual(found.settled.receipt, { "payment-response": "r" });
    assert.match(found.settled.why, /over 100 bytes/);
    // Three answers of 80 bytes (body and headers) in 200: the third pushes out the oldest ones.
    const small = { status: 200, headers: {}, body: Buffer.alloc(78) };
    for (const p of ps.slice(1)) {
      cache.lookup(p, NOW);
      cache.settle(p.key, { kept: small });
    }
    assert.equal(cache.lookup(at(ps, 1), NOW).kind, "new", "dropped to fit");
    assert.equal(cache.lookup(at(ps, 2), NOW).kind, "settled");
    assert.equal(cache.lookup(at(ps, 3), NOW).kind, "settled");
    assert.equal(cache.lookup(at(ps, 3), NOW + 11).kind, "new", "expired");
  });
});
