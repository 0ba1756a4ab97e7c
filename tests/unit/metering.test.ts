import * as assert from "node:assert/strict";
import type { PaymentRequired } from "@x402/core/types";
import {
  chargeForTokens,
  UPTO_DEFAULT_MAX_TOKENS,
  uptoCharge,
  uptoMaximum,
  uptoTokenCap,
} from "../../api/pricing";
import type { ServiceOfferSpec } from "../../api/resources";
import { decidePayment } from "../../controller/payments/decision";
import { readMeteredRequest, SseUsage, usageFromJson } from "../../controller/payments/metering";
import { OfferPaywall } from "../../controller/payments/paywall";
import { requirementsFor } from "../../controller/payments/requirements";
import { at } from "../harness/assertions";

const ASSET = {
  address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  symbol: "USDC",
  decimals: 6,
  transferMethod: "permit2" as const,
  eip712Name: "USD Coin",
  eip712Version: "2",
};
// 2 USDC per million tokens: 2 atomic units per token.
const PAYMENT = { asset: ASSET, price: { perMTok: "2" } };
const FACILITATOR = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

describe("upto metering (pure)", () => {
  it("charges tokens × price rounded up to the token's unit", () => {
    assert.equal(chargeForTokens(PAYMENT, 123n), 246n);
    assert.equal(chargeForTokens({ ...PAYMENT, price: { perMTok: "0.5" } }, 3n), 2n, "1.5 units → 2");
    assert.equal(chargeForTokens(PAYMENT, 0n), 0n);
    assert.throws(() => chargeForTokens({ asset: ASSET, price: { perRequest: "1" } }, 1n), /perMTok/);
  });

  it("sizes the maximum from max_tokens (or the default cap) plus one token per request byte", () => {
    assert.equal(uptoTokenCap({ maxTokens: 100, bodyBytes: 50 }), 150n);
    assert.equal(uptoTokenCap({ bodyBytes: 50 }), UPTO_DEFAULT_MAX_TOKENS + 50n);
    assert.equal(uptoTokenCap({ maxTokens: -3, bodyBytes: 0 }), UPTO_DEFAULT_MAX_TOKENS, "not a count");
    assert.equal(uptoMaximum(PAYMENT, 150n), 300n);
  });

  it("settles the reported usage, the maximum when it is over or missing, never more", () => {
    assert.deepEqual(uptoCharge(PAYMENT, 300n, 150n, 40n), { amount: 80n, tokens: 40n });
    assert.deepEqual(uptoCharge(PAYMENT, 300n, 150n, 150n), { amount: 300n, tokens: 150n });
    assert.deepEqual(uptoCharge(PAYMENT, 300n, 150n, 10_000n), {
      amount: 300n,
      tokens: 150n,
      capped: "over_maximum",
    });
    assert.deepEqual(uptoCharge(PAYMENT, 300n, 150n, undefined), {
      amount: 300n,
      tokens: 150n,
      capped: "usage_missing",
    });
  });

  it("reads max tokens and asks a stream for its usage chunk only when the client did not", () => {
    const plain = readMeteredRequest(Buffer.from('{"model":"m","max_tokens":64}'));
    assert.equal(plain.maxTokens, 64);
    assert.equal(plain.stream, false);
    assert.equal(plain.body.toString(), '{"model":"m","max_tokens":64}', "unchanged");
    const newer = readMeteredRequest(Buffer.from('{"max_tokens":64,"max_completion_tokens":32}'));
    assert.equal(newer.maxTokens, 32, "max_completion_tokens wins");
    const stream = readMeteredRequest(Buffer.from('{"stream":true,"stream_options":{"x":1}}'));
    assert.deepEqual(JSON.parse(stream.body.toString()).stream_options, { x: 1, include_usage: true });
    const asked = Buffer.from('{"stream":true,"stream_options":{"include_usage":true}}');
    assert.equal(readMeteredRequest(asked).body, asked, "already asked: sent as is");
    const junk = Buffer.from("not json");
    assert.deepEqual(readMeteredRequest(junk), { stream: false, body: junk });
  });

  it("reads usage from a JSON answer and from the last usage of an SSE stream split anywhere", () => {
    assert.equal(usageFromJson(Buffer.from('{"usage":{"total_tokens":42}}')), 42n);
    assert.equal(usageFromJson(Buffer.from('{"usage":{"prompt_tokens":5,"completion_tokens":7}}')), 12n);
    assert.equal(usageFromJson(Buffer.from('{"choices":[]}')), undefined);
    assert.equal(usageFromJson(Buffer.from("<html>")), undefined);
    const text =
      'data: {"choices":[{"delta":{"content":"a"}}]}\n\n' +
      'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\r\n\r\n' +
      "data: [DONE]\n\n";
    for (let cut = 0; cut < text.length; cut += 7) {
      const sse = new SseUsage();
      sse.push(text.slice(0, cut));
      sse.push(text.slice(cut));
      assert.equal(sse.end(), 7n, `split at ${cut}`);
    }
    const none = new SseUsage();
    none.push("data: token-1\n\ndata: [DONE]\n\n");
    assert.equal(none.end(), undefined);
  });

  it("offers upto next to exact with the request's maximum and the facilitator that may settle it", () => {
    const spec: ServiceOfferSpec = {
      type: "inference",
      model: { name: "m" },
      upstream: { url: "http://127.0.0.1:1", healthPath: "/health" },
      payment: {
        scheme: "exact",
        network: "eip155:84532",
        payTo: FACILITATOR,
        asset: ASSET,
        price: { perMTok: "2" },
        maxTimeoutSeconds: 60,
      },
      schemes: ["exact", "upto"],
      path: "/services/m",
    };
    const terms = { tokenCap: 150n, facilitators: new Map([["eip155:84532", FACILITATOR]]) };
    const reqs = requirementsFor(spec, "http://x/services/m", [], terms);
    assert.deepEqual(
      reqs.v2.map((r) => [r.scheme, r.amount]),
      [
        ["exact", "2000"],
        ["upto", "300"],
      ],
    );
    assert.equal(at(reqs.v2, 1).extra?.facilitatorAddress, FACILITATOR);
    // A person reading the 402 learns both ways to pay, in the token's units.
    const asked = decidePayment({}, reqs, 0);
    assert.equal(
      asked.kind === "required" ? asked.message : asked.kind,
      "this route costs 0.002 USDC on Base Sepolia (testnet) per request, or the tokens used at 2 USDC per 1M tokens, at most 0.0003 USDC for this request (x402 upto); pay with an x402 client (https://x402.org)",
    );
    const page = new OfferPaywall({ prices: reqs.prices, metered: reqs.metered }).generateHtml({
      x402Version: 2,
      accepts: reqs.v2 as PaymentRequired["accepts"],
      resource: { url: "http://x/services/m", description: "m", mimeType: "application/json" },
    });
    assert.match(
      page,
      /Or pay only for what is used: the tokens used at 2 USDC per 1M tokens, at most 0\.0003 USDC/,
    );
    assert.deepEqual(
      requirementsFor(spec, "http://x", [], { ...terms, facilitators: new Map() }).v2.map((r) => r.scheme),
      ["exact"],
      "a facilitator without upto: exact only",
    );
    assert.deepEqual(
      requirementsFor({ ...spec, schemes: ["upto"] }, "http://x", [], terms).v2.map((r) => r.scheme),
      ["upto"],
    );
  });
});
