/**
 * The test chain's own client (anvil, real process): what the payment tests read from it must be
 * the chain's present, not a cached past.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { scratchDir } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";

describe("the payment test chain (anvil)", function () {
  this.timeout(120_000);
  let chain: PaymentChain;

  before(async () => {
    chain = await startPaymentChain(path.join(scratchDir("payment-chain"), "logs"));
  });

  after(async () => {
    await chain?.stop();
  });

  it("reads the block number a transaction just mined, not one cached seconds before", async () => {
    // viem caches getBlockNumber for 4 s by default: the journey then read "no block since" right
    // after a payment settled and counted no Transfer (seen in CI).
    const before = await chain.client.getBlockNumber();
    await chain.mint(privateKeyToAccount(generatePrivateKey()).address, 1n);
    const after = await chain.client.getBlockNumber();
    assert.equal(after, before + 1n, "the mint's block is the head");
  });
});
