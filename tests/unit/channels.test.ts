import * as assert from "node:assert/strict";
import { encodePaymentSignatureHeader } from "@x402/core/http";
import type { Channel } from "@x402/evm/batch-settlement/server";
import type { ServiceOfferSpec } from "../../api/resources";
import { claimDecision, idleRefunds, isNothingToSettle, owed } from "../../controller/payments/claims";
import { decideChannelPayment } from "../../controller/payments/decision";
import { channelAuthorizers } from "../../controller/payments/facilitatorSupport";
import { isRejection } from "../../controller/payments/reasons";
import { requirementsFor } from "../../controller/payments/requirements";
import { type ParseContext, parseStackConfig } from "../../program/config/parse";
import { at, defined } from "../harness/assertions";
import { offerObject } from "./runtimeFixtures";

const AUTHORIZER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const NETWORK = "eip155:84532";
const spec = (extra: Record<string, unknown> = {}) =>
  offerObject("o", { schemes: ["exact", "batch-settlement"], ...extra }).spec as ServiceOfferSpec;
const authorizers = new Map([[NETWORK, AUTHORIZER]]);

function channel(over: Partial<Channel> = {}): Channel {
  return {
    channelId: `0x${"11".repeat(32)}`,
    channelConfig: {} as Channel["channelConfig"],
    chargedCumulativeAmount: "5000",
    signedMaxClaimable: "5000",
    signature: "0x",
    balance: "10000",
    totalClaimed: "2000",
    withdrawRequestedAt: 0,
    refundNonce: 0,
    lastRequestTimestamp: 1_000,
    ...over,
  };
}

describe("batch-settlement channels", () => {
  it("stack config: the scheme on an EIP-3009 perRequest offer gets default claim terms", () => {
    const ctx: ParseContext = { stack: "dev", secretKeys: new Set() };
    const cfg = parseStackConfig(
      {
        offers: [
          {
            name: "echo",
            upstream: { url: "http://127.0.0.1:9" },
            schemes: ["exact", "batch-settlement"],
            channels: { claimAmount: "0.5" },
            payment: {
              network: "base-sepolia",
              payTo: AUTHORIZER,
              price: { perRequest: "0.001" },
            },
          },
        ],
      },
      ctx,
    );
    assert.deepEqual(at(cfg.offers, 0).spec.channels, {
      claimIntervalSeconds: 60,
      refundIdleSeconds: 3600,
      claimAmount: "0.5",
    });
  });

  it("the 402 offers batch-settlement only with the facilitator's receiver authorizer", () => {
    const without = requirementsFor(spec(), "http://x/services/o");
    assert.deepEqual(
      without.v2.map((r) => r.scheme),
      ["exact"],
    );
    const withAuthorizer = requirementsFor(spec(), "http://x/services/o", [], undefined, authorizers);
    const entry = defined(
      withAuthorizer.v2.find((r) => r.scheme === "batch-settlement"),
      "a batch-settlement entry",
    );
    assert.equal(entry.amount, "1000");
    assert.equal(entry.extra?.receiverAuthorizer, AUTHORIZER);
    assert.equal(entry.extra?.withdrawDelay, 900);
    assert.equal(entry.extra?.assetTransferMethod, "eip3009");
    assert.equal(withAuthorizer.v1.length, 1, "v1 buyers still see exact");
  });

  it("reads the receiver authorizer from v2 batch-settlement kinds only", () => {
    const view = {
      state: "known" as const,
      url: "http://f",
      supported: {
        kinds: [
          {
            x402Version: 2,
            scheme: "batch-settlement",
            network: NETWORK,
            extra: { receiverAuthorizer: AUTHORIZER },
          },
          { x402Version: 2, scheme: "upto", network: "eip155:1", extra: { receiverAuthorizer: AUTHORIZER } },
        ],
        extensions: [],
        signers: {},
      },
    } as Parameters<typeof channelAuthorizers>[0];
    assert.deepEqual([...channelAuthorizers(view)], [[NETWORK, AUTHORIZER]]);
    assert.equal(channelAuthorizers({ state: "unknown", url: "http://f" } as never).size, 0);
  });

  it("takes a channel payment only for the 402's own requirement and price", () => {
    const reqs = requirementsFor(spec(), "http://x/services/o", [], undefined, authorizers);
    const entry = defined(
      reqs.v2.find((r) => r.scheme === "batch-settlement"),
      "a batch-settlement entry",
    );
    const header = (accepted: typeof entry) => ({
      "payment-signature": encodePaymentSignatureHeader({
        x402Version: 2,
        accepted,
        payload: { type: "voucher" },
      } as never),
    });
    const ok = decideChannelPayment(header(entry), reqs);
    assert.ok(ok && !isRejection(ok));
    assert.equal(ok.requirement, entry);
    const cheaper = decideChannelPayment(header({ ...entry, amount: "1" }), reqs);
    assert.ok(cheaper && isRejection(cheaper));
    assert.equal(cheaper.reason, "amount_mismatch");
    const elsewhere = decideChannelPayment(header({ ...entry, payTo: AUTHORIZER }), reqs);
    assert.ok(elsewhere && isRejection(elsewhere));
    assert.equal(elsewhere.reason, "unsupported_scheme");
    const exact = decideChannelPayment(
      header(
        defined(
          reqs.v2.find((r) => r.scheme === "exact"),
          "an exact entry",
        ),
      ),
      reqs,
    );
    assert.equal(exact, undefined, "an exact payment is not a channel payment");
  });

  it("tells a settle with nothing to settle from a failure, whatever the facilitator's error holds", () => {
    assert.equal(isNothingToSettle(new Error("nothing_to_settle: no claimed funds")), true);
    assert.equal(
      isNothingToSettle(Object.assign(new Error("settle failed"), { errorReason: "nothing_to_settle" })),
      true,
    );
    assert.equal(isNothingToSettle(new Error("insufficient_funds")), false);
    // A facilitator's reason of any JSON type: not read, and no throw (String() throws on these).
    assert.equal(
      isNothingToSettle(Object.assign(new Error("settle failed"), { errorReason: { toString: false } })),
      false,
    );
    assert.equal(isNothingToSettle(Object.create(null)), false);
    assert.equal(isNothingToSettle(null), false);
  });

  it("claims by amount or interval, never with nothing owed", () => {
    assert.equal(owed([channel(), channel({ chargedCumulativeAmount: "1", totalClaimed: "5" })]), 3000n);
    const base = { now: 10_000, lastClaimAt: 9_000, intervalMs: 60_000 };
    assert.equal(claimDecision({ ...base, owed: 0n, threshold: 0n }), "wait");
    assert.equal(claimDecision({ ...base, owed: 499n, threshold: 500n }), "wait");
    assert.equal(claimDecision({ ...base, owed: 500n, threshold: 500n }), "amount");
    assert.equal(claimDecision({ ...base, owed: 1n, now: 69_000 }), "interval");
  });

  it("refunds channels idle long enough with unused deposit, never one serving a request", () => {
    const now = 100_000;
    const idle = channel({ lastRequestTimestamp: 0 });
    const busy = channel({
      lastRequestTimestamp: 0,
      pendingRequest: { pendingId: "p", signedMaxClaimable: "6000", expiresAt: now + 1 },
    });
    const spent = channel({ lastRequestTimestamp: 0, chargedCumulativeAmount: "10000" });
    const recent = channel({ lastRequestTimestamp: now - 10 });
    assert.deepEqual(idleRefunds([idle, busy, spent, recent], now, 60_000), [idle]);
  });
});
