/**
 * Payment channels with x402's `batch-settlement` scheme, every part a real process on loopback:
 * anvil with x402's batch-settlement contract and ERC-3009 deposit collector at their canonical
 * addresses, the self-run facilitator, the controller and the gateway (channel state on disk).
 * The buyer is @x402/evm's batch-settlement client behind @x402/fetch; the chain shows what was
 * deposited, claimed, settled and refunded, and how many transactions it took.
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  decodePaymentSignatureHeader,
} from "@x402/core/http";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { type Address, type Hex, parseAbi } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../harness/anvil";
import { defined } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain, X402_BATCH_SETTLEMENT_ADDRESS } from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import { sampleValue } from "../harness/promql";
import {
  createNamespace,
  createPaidOffer,
  installCrds,
  startFacilitatorProcess,
  startRuntime,
  startSellerRuntime,
  Upstream,
  waitForHttp,
} from "./runtime/helpers";

const PRICE = 1000n; // 0.001 USDC
const CALLS = 1000;
const KILL_AT = 600;
const DEPOSIT_MULTIPLIER = 2000; // a 2 USDC deposit: 1000 calls use half of it
/** What the gateway presents on the facilitator's /verify and /settle (as the stack sets it up). */
const FACILITATOR_TOKEN = "channels-test-facilitator-token";

const channelsAbi = parseAbi([
  "function channels(bytes32) view returns (uint128 balance, uint128 totalClaimed)",
  "function refundNonce(bytes32) view returns (uint256)",
  "function receivers(address,address) view returns (uint128 totalClaimed, uint128 totalSettled)",
]);

/** The requests that reached the upstream (health checks aside). */
const served = (upstream: Upstream) => upstream.requests.filter((r) => !r.url.startsWith("/health")).length;

describe("x402 batch-settlement: channels claimed in batches (anvil, facilitator, gateway: real processes)", function () {
  this.timeout(10 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  const upstream = new Upstream();
  let publicUrl: string;
  let internalUrl: string;
  let facilitatorUrl: string;
  let logDir: string;
  let stateDir: string;
  let namespace: string;
  // Gasless: the buyer only signs (the deposit's EIP-3009 authorization and the vouchers).
  const buyer = privateKeyToAccount(generatePrivateKey());
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;
  const url = () => `${publicUrl}/services/api/call`;
  /** Every PAYMENT-SIGNATURE the buyer sent, in order. */
  const sent: string[] = [];

  const recordingFetch: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const signature = request.headers.get("payment-signature");
    if (signature) sent.push(signature);
    return fetch(request);
  };
  let paidFetch: typeof fetch;

  function startGateway(port: number, internalPort: number): ManagedProcess {
    return startRuntime(
      "gateway",
      "gateway",
      [
        "--kubeconfig",
        cp.kubeconfigPath,
        "--namespace",
        namespace,
        "--port",
        String(port),
        "--host",
        "127.0.0.1",
      ],
      logDir,
      {
        INTERNAL_PORT: String(internalPort),
        INTERNAL_HOST: "127.0.0.1",
        FACILITATOR_URL: facilitatorUrl,
        FACILITATOR_TOKEN,
        CHANNEL_STATE_DIR: stateDir,
      },
    );
  }

  async function paidCall(): Promise<Response> {
    const res = await paidFetch(url(), {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    await res.arrayBuffer();
    return res;
  }

  const transactionsSince = async (block: bigint): Promise<number> => {
    const latest = await chain.client.getBlockNumber();
    let count = 0;
    for (let b = block + 1n; b <= latest; b++) {
      count += (await chain.client.getBlock({ blockNumber: b })).transactions.length;
    }
    return count;
  };

  before(async () => {
    const scratch = scratchDir("channels");
    logDir = path.join(scratch, "logs");
    stateDir = path.join(scratch, "channel-state");
    cp = await sharedControlPlane();
    await installCrds(cp);
    namespace = `channels-${process.pid}`;
    await createNamespace(cp, namespace);
    chain = await startPaymentChain(logDir);
    await chain.mint(buyer.address, 10_000_000n); // 10 USDC
    const client = new x402Client();
    client.register(
      "eip155:*",
      new BatchSettlementEvmScheme(buyer, {
        depositPolicy: { depositMultiplier: DEPOSIT_MULTIPLIER },
        rpcUrl: chain.anvil.rpcUrl,
      }),
    );
    client.setSpendControls(false); // the test token is not one of the library's default assets
    paidFetch = wrapFetchWithPayment(recordingFetch, client);
    await upstream.start();
    const facilitatorPort = await freePort();
    facilitatorUrl = `http://127.0.0.1:${facilitatorPort}`;
    facilitator = await startFacilitatorProcess({
      logDir,
      rpcUrl: chain.anvil.rpcUrl,
      port: facilitatorPort,
      signerKey: ANVIL_KEYS[0],
      accessToken: FACILITATOR_TOKEN,
    });
    const seller = await startSellerRuntime({
      cp,
      namespace,
      logDir,
      facilitatorUrl,
      gatewayEnv: { CHANNEL_STATE_DIR: stateDir, FACILITATOR_TOKEN },
    });
    ({ gateway, controller, publicUrl, internalUrl } = seller);
    await createPaidOffer(cp, namespace, "api", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo,
      asset: chain.asset,
      path: "/services/api",
      extra: {
        schemes: ["exact", "batch-settlement"],
        // Claims by amount (every 0.5 USDC owed), not by time; idle channels refunded after 60 s.
        channels: { claimIntervalSeconds: 600, claimAmount: "0.5", refundIdleSeconds: 60 },
      },
      logs: [controller, gateway],
      routedAt: [publicUrl],
    });
  });

  after(async () => {
    await Promise.all([gateway?.stop(), controller?.stop(), facilitator?.stop()]);
    await upstream.stop();
    await chain?.stop();
  });

  it("offers batch-settlement next to exact, naming the facilitator as receiver authorizer", async () => {
    const res = await fetch(url(), { method: "POST" });
    assert.equal(res.status, 402);
    const required = decodePaymentRequiredHeader(
      defined(res.headers.get("payment-required") ?? undefined, "PAYMENT-REQUIRED"),
    );
    const channel = defined(
      required.accepts.find((r) => r.scheme === "batch-settlement"),
      "the 402 offers batch-settlement",
    );
    assert.equal(channel.amount, PRICE.toString());
    assert.equal(channel.payTo, payTo);
    assert.equal(channel.extra?.receiverAuthorizer, privateKeyToAccount(ANVIL_KEYS[0] as Hex).address);
    assert.equal(channel.extra?.withdrawDelay, 900);
    assert.ok(required.accepts.some((r) => r.scheme === "exact"));
  });

  it("1000 paid calls by one buyer, a gateway killed mid-run, replays refused: settled exactly in ≤ 5 transactions after the deposit", async () => {
    const buyerBefore = await chain.balanceOf(buyer.address);
    const first = await paidCall();
    assert.equal(first.status, 200, "the first call (deposit) is served");
    const receipt = decodePaymentResponseHeader(
      defined(first.headers.get("payment-response") ?? undefined, "PAYMENT-RESPONSE"),
    );
    assert.ok(receipt.transaction, "the deposit is a transaction");
    const depositBlock = await chain.client.getBlockNumber();
    assert.equal(
      (await chain.balanceOf(buyer.address)) + PRICE * BigInt(DEPOSIT_MULTIPLIER),
      buyerBefore,
      "the deposit left the buyer's wallet",
    );

    const upstreamBefore = served(upstream);
    for (let i = 2; i <= KILL_AT; i++) {
      const res = await paidCall();
      assert.equal(res.status, 200, `call ${i}`);
    }
    assert.equal(served(upstream) - upstreamBefore, KILL_AT - 1);

    // A replayed voucher (the last one) and an older, lower one: refused, nothing proxied.
    const servedBefore = served(upstream);
    for (const [what, header] of [
      ["the last voucher again", defined(sent.at(-1), "a voucher was sent")],
      ["an older voucher", defined(sent[100], "an older voucher")],
    ] as const) {
      const replay = await fetch(url(), {
        method: "POST",
        body: "{}",
        headers: { "payment-signature": header },
      });
      const body = (await replay.json()) as { error?: string; message?: string };
      assert.equal(replay.status, 402, what);
      assert.match(String(body.error), /cumulative_amount_mismatch/, `${what}: ${JSON.stringify(body)}`);
      assert.equal(served(upstream), servedBefore, `${what} is not proxied`);
    }

    // The gateway dies without a chance to flush; a new one takes over the same state directory.
    gateway.child.kill("SIGKILL");
    await new Promise((resolve) => gateway.child.once("exit", resolve));
    const port = Number(new URL(publicUrl).port);
    const internalPort = Number(new URL(internalUrl).port);
    gateway = startGateway(port, internalPort);
    await waitForHttp("the restarted gateway", `${internalUrl}/healthz`, gateway);
    await waitFor(
      "the offer routed again",
      async () => (await fetch(url(), { method: "POST" })).status === 402,
      {
        timeoutMs: 30_000,
      },
    );

    // The last voucher before the kill is still known: replaying it after the restart is refused.
    const replayAfter = await fetch(url(), {
      method: "POST",
      body: "{}",
      headers: { "payment-signature": sent.at(-1)! },
    });
    assert.equal(replayAfter.status, 402, "a voucher accepted before the restart is not accepted again");
    assert.equal(served(upstream), servedBefore);

    for (let i = KILL_AT + 1; i <= CALLS; i++) {
      const res = await paidCall();
      assert.equal(res.status, 200, `call ${i}`);
    }
    assert.equal(served(upstream) - upstreamBefore, CALLS - 1);
    // The restarted gateway accepted those vouchers with its native check, not the library's
    // JavaScript one (the replay above and a voucher on state it had to re-read go to the library).
    const metrics = await (await fetch(`${internalUrl}/metrics`)).text();
    // A counter never incremented has no sample (NaN): 0.
    const counted = (name: string, labels: Record<string, string>) => sampleValue(metrics, name, labels) || 0;
    const checked = (path: string) => counted("x402_channel_vouchers_checked_total", { path });
    assert.ok(checked("native") >= CALLS - KILL_AT - 2, `native checks: ${checked("native")}`);
    assert.ok(checked("library") <= 3, `library checks: ${checked("library")}`);
    // Their signatures were recovered on the signature thread, none on the event loop.
    const recovered = (where: string) => counted("x402_channel_signatures_recovered_total", { where });
    assert.ok(recovered("worker") >= checked("native"), `recovered on the worker: ${recovered("worker")}`);
    assert.equal(recovered("loop"), 0);

    // Everything charged is claimed and settled to the seller (amount threshold, then the idle
    // refund claims the rest): exactly 1000 calls' worth.
    const owed = PRICE * BigInt(CALLS);
    await waitFor("the seller paid for every call", async () => (await chain.balanceOf(payTo)) === owed, {
      timeoutMs: 180_000,
      intervalMs: 1000,
    });
    // The idle refund returns the unused deposit to the buyer.
    await waitFor(
      "the unused deposit refunded to the buyer",
      async () => (await chain.balanceOf(buyer.address)) === buyerBefore - owed,
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const [claimed, settledTotal] = await chain.client.readContract({
      address: X402_BATCH_SETTLEMENT_ADDRESS,
      abi: channelsAbi,
      functionName: "receivers",
      args: [payTo, chain.asset.address],
    });
    assert.equal(claimed, owed);
    assert.equal(settledTotal, owed);
    assert.equal(await chain.balanceOf(X402_BATCH_SETTLEMENT_ADDRESS), 0n, "nothing left in the contract");
    const txs = await transactionsSince(depositBlock);
    console.log(
      `      ${CALLS} paid calls: 1 deposit transaction, then ${txs} (claims, settlements, refund)`,
    );
    assert.ok(txs <= 5, `${txs} transactions after the deposit`);
  });

  it("limits.perPayerRps holds for channel payers: over the rate 429 with Retry-After, nothing proxied or charged", async () => {
    const limitedPayTo = privateKeyToAccount(generatePrivateKey()).address as Address;
    await createPaidOffer(cp, namespace, "limited", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo: limitedPayTo,
      asset: chain.asset,
      extra: {
        schemes: ["exact", "batch-settlement"],
        channels: { claimIntervalSeconds: 5, claimAmount: "0.5", refundIdleSeconds: 60 },
        limits: { perPayerRps: 1 },
      },
      logs: [controller, gateway],
      routedAt: [publicUrl],
    });
    const limitedUrl = `${publicUrl}/services/limited/call`;
    const payer = privateKeyToAccount(generatePrivateKey());
    await chain.mint(payer.address, 1_000_000n);
    const client = new x402Client();
    client.register(
      "eip155:*",
      new BatchSettlementEvmScheme(payer, {
        depositPolicy: { depositMultiplier: 10 },
        rpcUrl: chain.anvil.rpcUrl,
      }),
    );
    client.setSpendControls(false);
    const pay = wrapFetchWithPayment(fetch, client);
    const call = async () => {
      const res = await pay(limitedUrl, {
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json" },
      });
      const body = await res.text();
      return { status: res.status, retryAfter: res.headers.get("retry-after"), body };
    };

    const first = await call();
    assert.equal(first.status, 200, `the first call (the deposit) is served: ${first.body}`);
    const upstreamBefore = served(upstream);
    const second = await call();
    assert.equal(second.status, 429, `a second call within the second: ${second.body}`);
    assert.match(second.body, /payer_rate_limited/);
    assert.ok(Number(second.retryAfter) >= 1, "Retry-After says when to come back");
    assert.equal(served(upstream), upstreamBefore, "the limited call is not proxied");

    // After the window the payer is served again, and only served calls are paid for.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const third = await call();
    assert.equal(third.status, 200, `after Retry-After: ${third.body}`);
    assert.equal(served(upstream), upstreamBefore + 1);
    await waitFor(
      "the two served calls claimed to the seller",
      async () => (await chain.balanceOf(limitedPayTo)) === 2n * PRICE,
      {
        timeoutMs: 120_000,
        intervalMs: 1000,
      },
    );
  });

  it("only the gateway can have the facilitator refund a channel: asked without its access token, 401 and nothing submitted", async () => {
    // A channel with charged, unclaimed vouchers: a refund of its whole balance would leave them
    // unclaimable, so the seller would lose what it served.
    const guardedPayTo = privateKeyToAccount(generatePrivateKey()).address as Address;
    await createPaidOffer(cp, namespace, "guarded", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo: guardedPayTo,
      asset: chain.asset,
      extra: {
        schemes: ["exact", "batch-settlement"],
        channels: { claimIntervalSeconds: 600, claimAmount: "0.5", refundIdleSeconds: 600 },
      },
      logs: [controller, gateway],
      routedAt: [publicUrl],
    });
    const payer = privateKeyToAccount(generatePrivateKey());
    await chain.mint(payer.address, 1_000_000n);
    const client = new x402Client();
    client.register(
      "eip155:*",
      new BatchSettlementEvmScheme(payer, {
        depositPolicy: { depositMultiplier: 10 },
        rpcUrl: chain.anvil.rpcUrl,
      }),
    );
    client.setSpendControls(false);
    const signatures: string[] = [];
    const pay = wrapFetchWithPayment(async (input, init) => {
      const request = new Request(input, init);
      const signature = request.headers.get("payment-signature");
      if (signature) signatures.push(signature);
      return fetch(request);
    }, client);
    for (let i = 1; i <= 3; i++) {
      const res = await pay(`${publicUrl}/services/guarded/call`, { method: "POST", body: "{}" });
      assert.equal(res.status, 200, `call ${i}: ${await res.text()}`);
    }
    const voucherPayment = decodePaymentSignatureHeader(defined(signatures.at(-1), "a voucher was sent"));
    const { channelConfig, voucher } = voucherPayment.payload as {
      channelConfig: Record<string, unknown>;
      voucher: { channelId: Hex; maxClaimableAmount: string; signature: Hex };
    };
    const channel = () =>
      chain.client.readContract({
        address: X402_BATCH_SETTLEMENT_ADDRESS,
        abi: channelsAbi,
        functionName: "channels",
        args: [voucher.channelId],
      });
    const [balance, totalClaimed] = await channel();
    assert.equal(balance, 10n * PRICE, "the deposit");
    assert.equal(totalClaimed, 0n, "nothing claimed yet");
    const refundNonce = await chain.client.readContract({
      address: X402_BATCH_SETTLEMENT_ADDRESS,
      abi: channelsAbi,
      functionName: "refundNonce",
      args: [voucher.channelId],
    });
    // The refund the seller's gateway would ask for, without the claims that protect the seller.
    const refund = JSON.stringify({
      x402Version: 2,
      paymentPayload: {
        x402Version: 2,
        accepted: voucherPayment.accepted,
        payload: {
          type: "refund",
          channelConfig,
          voucher,
          amount: balance.toString(),
          refundNonce: refundNonce.toString(),
          claims: [],
        },
      },
      paymentRequirements: voucherPayment.accepted,
    });
    const askRefund = (authorization?: string) =>
      fetch(`${facilitatorUrl}/settle`, {
        method: "POST",
        body: refund,
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
      });
    const payerBefore = await chain.balanceOf(payer.address);
    for (const authorization of [undefined, "Bearer not-the-token", `Basic ${FACILITATOR_TOKEN}`]) {
      const res = await askRefund(authorization);
      const body = await res.text();
      assert.equal(res.status, 401, `${authorization ?? "no Authorization"}: ${body}`);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer /);
      assert.match(body, /access token/);
      assert.ok(!body.includes(FACILITATOR_TOKEN), "the refusal does not echo the token");
    }
    const verify = await fetch(`${facilitatorUrl}/verify`, { method: "POST", body: refund });
    assert.equal(verify.status, 401, "verify needs the token too");
    assert.deepEqual(await channel(), [balance, totalClaimed], "the channel is untouched");
    assert.equal(await chain.balanceOf(payer.address), payerBefore, "nothing refunded");

    // The same request with the token (which only the gateway holds) is carried out: the token,
    // not the request's shape, is what kept it out (before it, any caller got this far).
    const allowed = await askRefund(`Bearer ${FACILITATOR_TOKEN}`);
    const settled = (await allowed.json()) as { success?: boolean; errorReason?: string };
    assert.equal(allowed.status, 200);
    assert.equal(settled.success, true, JSON.stringify(settled));
    assert.equal(await chain.balanceOf(payer.address), payerBefore + balance, "the whole deposit back");
  });
});
