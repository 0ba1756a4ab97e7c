/**
 * The buyer withdrawing a channel's unspent deposit itself when the seller stops refunding, every
 * part a real process on loopback: anvil (x402's batch-settlement contract at its canonical
 * address), the self-run facilitator, the seller's controller and gateway, and the buyer process
 * with its ledger file. The seller pays a few calls by voucher and then goes away; the buyer,
 * after the channel's idle time, initiates the withdrawal, refuses calls while it is pending, and
 * finalizes it once the chain's clock has passed the channel's withdrawDelay.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { toClientEvmSigner } from "@x402/evm";
import { readChannelBalanceAndTotalClaimed } from "@x402/evm/batch-settlement/client";
import { type Address, type Hex, parseEther } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { LedgerEvent } from "../../controller/buyer/ledger";
import { ANVIL_KEYS } from "../harness/anvil";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { type ManagedProcess, waitFor } from "../harness/processes";
import {
  createNamespace,
  createObject,
  getObject,
  installCrds,
  startBuyerProcess,
  startChannelSeller,
  Upstream,
} from "./runtime/helpers";

const FUNDED = 1_000_000n; // 1 USDC
const DEPOSIT = 6000n; // channels.deposit "0.006"
const CALLS = 3; // at 0.001 each
const WITHDRAW_DELAY_SECONDS = 900; // the seller's channels (controller/payments/requirements.ts)

describe("the buyer withdraws a channel's unspent deposit itself when the seller stops refunding (anvil, facilitator, gateway, buyer: real processes)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  let buyerProc: ManagedProcess;
  const upstream = new Upstream();
  let namespace: string;
  let buyerUrl: string;
  let ledgerPath: string;
  const buyerKey = generatePrivateKey();
  const buyer = privateKeyToAccount(buyerKey);
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;

  const call = async () => {
    const res = await fetch(`${buyerUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "paid/withdraw-model", messages: [{ role: "user", content: "hi" }] }),
    });
    return { status: res.status, retryAfter: res.headers.get("retry-after"), text: await res.text() };
  };
  const channelsStatus = async () =>
    (
      (await getObject(cp, namespace, "purchaserequests", "withdraw"))?.status as
        | {
            spentTotal?: string;
            channels?: { deposited: string; charged: string; refunded: string; withdrawing?: string };
          }
        | undefined
    )?.channels;
  const ledgerEvents = (): LedgerEvent[] =>
    fs
      .readFileSync(ledgerPath, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as LedgerEvent);
  const rpc = (method: string, params: unknown[]) =>
    chain.client.request({ method: method as never, params: params as never });

  before(async () => {
    const scratch = scratchDir("buyer-withdrawal");
    const logDir = path.join(scratch, "logs");
    ledgerPath = path.join(scratch, "buyer", "ledger.jsonl");
    cp = await sharedControlPlane();
    await installCrds(cp);
    namespace = `buyer-withdrawal-${process.pid}`;
    await createNamespace(cp, namespace);
    chain = await startPaymentChain(logDir);
    await chain.mint(buyer.address, FUNDED);
    // Withdrawing is the one thing the buyer does that costs gas.
    await rpc("anvil_setBalance", [buyer.address, `0x${parseEther("1").toString(16)}`]);
    await upstream.start();
    // The seller would refund an idle channel only after a day: the buyer gives up sooner.
    const started = await startChannelSeller({
      cp,
      namespace,
      logDir,
      rpcUrl: chain.anvil.rpcUrl,
      facilitatorKey: ANVIL_KEYS[0],
      stateDir: path.join(scratch, "channel-state"),
      offer: {
        upstreamPort: upstream.port,
        network: chain.network,
        payTo,
        asset: chain.asset,
        channels: { claimIntervalSeconds: 600, refundIdleSeconds: 86_400 },
      },
    });
    ({ facilitator } = started);
    ({ gateway, controller } = started.seller);
    const endpoint = started.endpoint;
    await createObject(cp, namespace, "purchaserequests", "PurchaseRequest", "withdraw", {
      endpoint,
      model: "withdraw-model",
      payment: {
        network: chain.network,
        asset: chain.asset.address,
        decimals: 6,
        maxPrice: "0.001",
        rpcUrl: chain.anvil.rpcUrl,
      },
      budget: { maxPerRequest: "0.001", maxTotal: "1" },
      channels: { deposit: "0.006", withdrawAfterIdleSeconds: 3 },
    });
    ({ proc: buyerProc, url: buyerUrl } = await startBuyerProcess({
      cp,
      namespace,
      logDir,
      signerKey: buyerKey,
      ledgerPath,
      resolveEveryMs: 500,
    }));
  });

  after(async () => {
    await Promise.all([buyerProc?.stop(), gateway?.stop(), controller?.stop(), facilitator?.stop()]);
    await upstream.stop();
    await chain?.stop();
  });

  it("initiates after the idle time, refuses calls while pending, finalizes after the delay, and leaves the seller what the buyer signed", async () => {
    for (let i = 0; i < CALLS; i++) {
      const r = await call();
      assert.equal(r.status, 200, r.text);
    }
    assert.equal(await chain.balanceOf(buyer.address), FUNDED - DEPOSIT, "one deposit paid the calls");
    // The seller goes away without claiming or refunding.
    await gateway.stop();

    await waitFor(
      "the buyer to initiate the withdrawal",
      async () => (await channelsStatus())?.withdrawing === "0.003",
      {
        timeoutMs: 60_000,
      },
    );
    const initiated = ledgerEvents().find((e) => e.kind === "withdrawal");
    assert.ok(initiated?.kind === "withdrawal");
    assert.equal(initiated.amount, "3000", "the deposit less the three vouchers the buyer signed");
    const receipt = await chain.client.getTransactionReceipt({ hash: initiated.tx as Hex });
    assert.equal(receipt.status, "success");
    assert.equal(receipt.from.toLowerCase(), buyer.address.toLowerCase(), "sent by the buyer's wallet");

    const refused = await call();
    assert.equal(refused.status, 503, refused.text);
    assert.equal(JSON.parse(refused.text).error.type, "channel_withdrawing");
    assert.ok(Number(refused.retryAfter) > 0, `Retry-After: ${refused.retryAfter}`);
    assert.equal(
      ledgerEvents().filter((e) => e.kind === "voucher").length,
      CALLS,
      "nothing was signed for the refused call",
    );

    // Before the delay, finalizing would revert: the buyer waits.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(ledgerEvents().filter((e) => e.kind === "withdrawn").length, 0);
    await rpc("evm_increaseTime", [WITHDRAW_DELAY_SECONDS]);
    await rpc("evm_mine", []);

    await waitFor(
      "the withdrawal finalized and counted",
      async () => {
        const c = await channelsStatus();
        return c?.withdrawing === "0" && c?.refunded === "0.003";
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(
      await chain.balanceOf(buyer.address),
      FUNDED - 3000n,
      "the unspent 0.003 is back in the wallet",
    );
    const status = (await getObject(cp, namespace, "purchaserequests", "withdraw"))?.status as {
      spentTotal?: string;
    };
    assert.equal(status.spentTotal, "0.003", "the budget counts only what the calls cost");
    // What the buyer signed stays in the channel for the seller to claim.
    const [balance, totalClaimed] = await readChannelBalanceAndTotalClaimed(
      toClientEvmSigner(buyer, chain.client),
      initiated.channel as Hex,
    );
    assert.equal(balance, 3000n);
    assert.equal(totalClaimed, 0n);
  });
});
