import * as assert from "node:assert/strict";
import type { SettleResponse } from "@x402/core/types";
import { pendingTransaction, SubmittedSettlements } from "../../controller/facilitator/settlements";
import { followOutcome } from "../../controller/payments/pending";

const TX = `0x${"ab".repeat(32)}` as const;
const answer = (fields: Partial<SettleResponse>): SettleResponse => ({
  success: false,
  transaction: "",
  network: "eip155:84532",
  ...fields,
});

describe("pending settlements", () => {
  it("a settle answer is final only when it succeeded or failed for another reason than pending", () => {
    assert.equal(followOutcome(answer({ success: true, transaction: TX })), "settled");
    assert.equal(followOutcome(answer({ errorReason: "settlement_pending", transaction: TX })), "pending");
    assert.equal(followOutcome(answer({ errorReason: "settlement_in_progress" })), "pending");
    assert.equal(followOutcome(undefined), "pending", "no answer (timeout, unreachable): ask again");
    assert.equal(followOutcome(answer({ errorReason: "transaction_failed", transaction: TX })), "failed");
  });

  it("the facilitator calls a failed settle pending only when a transaction may still be mined", () => {
    assert.equal(
      pendingTransaction({ success: false, errorReason: "settlement_pending", transaction: TX }, []),
      TX,
    );
    assert.equal(
      pendingTransaction({ success: false, errorReason: "Timed out while waiting", transaction: "" }, [TX]),
      TX,
      "x402's v1 path drops the hash of a broadcast whose receipt wait failed",
    );
    assert.equal(
      pendingTransaction({ success: false, errorReason: "invalid_signature", transaction: "" }, []),
      undefined,
    );
    assert.equal(
      pendingTransaction({ success: false, errorReason: "transaction_failed", transaction: TX }, [TX]),
      undefined,
      "a reverted transaction is final",
    );
    assert.equal(pendingTransaction({ success: true, transaction: TX }, [TX]), undefined);
  });

  it("remembers submitted settlements for a while, newest kept when bounded", () => {
    const known = new SubmittedSettlements(1_000, 2);
    known.record("a", TX, "pending", "0xpayer", 0);
    assert.equal(known.get("a", 500)?.state, "pending");
    assert.equal(known.pendingCount(), 1);
    known.record("a", TX, "settled", "0xpayer", 600);
    assert.equal(known.get("a", 1_500)?.state, "settled", "the age counts from the last change");
    assert.equal(known.get("a", 1_601), undefined, "forgotten after the TTL");
    known.record("b", TX, "pending", undefined, 2_000);
    known.record("c", TX, "pending", undefined, 2_001);
    known.record("d", TX, "pending", undefined, 2_002);
    assert.equal(known.get("b", 2_003), undefined, "the oldest goes first");
    assert.equal(known.get("d", 2_003)?.state, "pending");
    known.forget("d");
    assert.equal(known.get("d", 2_003), undefined, "a final answer is given once");
  });
});
