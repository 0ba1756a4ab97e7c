import * as assert from "node:assert/strict";
import { decodePaymentResponseHeader, encodePaymentResponseHeader } from "@x402/core/http";
import type { SettleResponse } from "@x402/core/types";
import { encodeSettlementHeader, receiptHeader } from "../../controller/payments/responses";

describe("receipt headers", () => {
  const receipts: SettleResponse[] = [
    {
      success: true,
      transaction: `0x${"ab".repeat(32)}`,
      network: "eip155:84532",
      payer: `0x${"12".repeat(20)}`,
    },
    {
      success: true,
      transaction: "",
      network: "eip155:8453",
      payer: `0x${"34".repeat(20)}`,
      amount: "1000",
      extra: { channelState: { channelId: `0x${"11".repeat(32)}`, balance: "100000", totalClaimed: "0" } },
    } as SettleResponse,
    {
      success: false,
      errorReason: "settlement_failed",
      errorMessage: "nonce already used — €, ü, 中文 and 🚀 survive",
      transaction: "",
      network: "eip155:1",
      extensionResponses: { "payment-identifier": { id: "abc" } },
    } as SettleResponse,
  ];

  it("encodes exactly what @x402/core's encoder writes (extension responses left out)", () => {
    for (const receipt of receipts) {
      assert.equal(encodeSettlementHeader(receipt), encodePaymentResponseHeader(receipt));
      const decoded = decodePaymentResponseHeader(encodeSettlementHeader(receipt)) as unknown as Record<
        string,
        unknown
      >;
      assert.equal("extensionResponses" in decoded, false);
    }
  });

  it("names the header by x402 version", () => {
    const [receipt] = receipts;
    assert.deepEqual(Object.keys(receiptHeader(2, receipt!)), ["payment-response"]);
    assert.deepEqual(Object.keys(receiptHeader(1, receipt!)), ["x-payment-response"]);
  });
});
