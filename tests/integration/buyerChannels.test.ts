/**
 * The buyer proxy paying a batch-settlement seller through a channel, every part a real process
 * on loopback: anvil (x402's batch-settlement contract and ERC-3009 deposit collector at their
 * canonical addresses), the self-run facilitator, the seller's controller and gateway (channel
 * state on disk), and the buyer process with its ledger file. A recording proxy between buyer
 * and seller keeps every PAYMENT-SIGNATURE the buyer sent; the chain shows what moved.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import { decodePaymentSignatureHeader } from "@x402/core/http";
import type { Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../harness/anvil";
import { at } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import {
  createNamespace,
  createObject,
  getObject,
  installCrds,
  mergePatch,
  startChannelSeller,
  startRuntime,
  Upstream,
  waitForHttp,
} from "./runtime/helpers";

const PRICE = 1000n; // 0.001 USDC a call
const FIRST_DEPOSIT = 6000n; // channels.deposit "0.006"
const TOP_UP = 4500n; // what maxTotal "0.0105" leaves after the first deposit
const CALLS = 10; // 10 500 deposited pays 10 calls; the 11th needs 500 more than the budget leaves
const RESTART_AFTER = 3;

type Sent = { type: string; channel: string; cumulative: bigint };

/** A loopback HTTP proxy to the seller that records the PAYMENT-SIGNATURE of each request. */
class RecordingProxy {
  readonly requests: (Sent | undefined)[] = [];
  private server?: http.Server;
  url = "";

  async start(target: string): Promise<void> {
    const port = await freePort();
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const signature = req.headers["payment-signature"];
        if (typeof signature === "string") {
          const payload = decodePaymentSignatureHeader(signature).payload as {
            type: string;
            voucher: { channelId: string; maxClaimableAmount: string };
          };
          this.requests.push({
            type: payload.type,
            channel: payload.voucher.channelId.toLowerCase(),
            cumulative: BigInt(payload.voucher.maxClaimableAmount),
          });
        } else this.requests.push(undefined);
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers))
          if (typeof v === "string" && !["host", "content-length", "connection"].includes(k))
            headers.set(k, v);
        try {
          const upstream = await fetch(`${target}${req.url}`, {
            method: req.method ?? "POST",
            headers,
            ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
          });
          const out: Record<string, string> = {};
          upstream.headers.forEach((v, k) => {
            if (!["content-length", "transfer-encoding", "connection", "content-encoding"].includes(k))
              out[k] = v;
          });
          res.writeHead(upstream.status, out).end(Buffer.from(await upstream.arrayBuffer()));
        } catch (err) {
          res.writeHead(502).end(String(err));
        }
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${port}`;
  }

  /** The payments sent, in order. */
  payments(): Sent[] {
    return this.requests.filter((r): r is Sent => r !== undefined);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("the buyer pays a batch-settlement seller through a channel (anvil, facilitator, gateway, buyer: real processes)", function () {
  this.timeout(10 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  let buyerProc: ManagedProcess | undefined;
  const upstream = new Upstream();
  const proxy = new RecordingProxy();
  let logDir: string;
  let namespace: string;
  let buyerUrl: string;
  let ledgerPath: string;
  let buyerPort: number;
  // Gasless: the buyer only signs (deposit authorizations and vouchers).
  const buyerKey = generatePrivateKey();
  const buyer = privateKeyToAccount(buyerKey);
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;

  /** `resolveEveryMs`: how often the buyer reads its channels on chain (besides at start). */
  const startBuyer = async (resolveEveryMs = 500) => {
    buyerProc = startRuntime(
      "buyer",
      "buyer",
      [
        ...["--kubeconfig", cp.kubeconfigPath, "--namespace", namespace, "--port", String(buyerPort)],
        ...["--host", "127.0.0.1", "--resolve-interval-ms", String(resolveEveryMs)],
      ],
      logDir,
      { SIGNER_KEY: buyerKey, LEDGER_PATH: ledgerPath },
    );
    await waitForHttp("the buyer", `${buyerUrl}/healthz`, buyerProc);
  };

  const call = async () => {
    const res = await fetch(`${buyerUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "paid/channel-model", messages: [{ role: "user", content: "hi" }] }),
    });
    return { status: res.status, text: await res.text() };
  };

  const status = async () =>
    (await getObject(cp, namespace, "purchaserequests", "channel"))?.status as
      | {
          requests?: number;
          spentTotal?: string;
          channels?: { deposited: string; charged: string; refunded: string };
        }
      | undefined;

  before(async () => {
    const scratch = scratchDir("buyer-channels");
    logDir = path.join(scratch, "logs");
    ledgerPath = path.join(scratch, "buyer", "ledger.jsonl");
    cp = await sharedControlPlane();
    await installCrds(cp);
    namespace = `buyer-channels-${process.pid}`;
    await createNamespace(cp, namespace);
    chain = await startPaymentChain(logDir);
    await chain.mint(buyer.address, 1_000_000n); // 1 USDC
    await upstream.start();
    // Claims every 5 s; a channel idle for 60 s is refunded.
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
        channels: { claimIntervalSeconds: 5, refundIdleSeconds: 60 },
      },
    });
    ({ facilitator } = started);
    ({ gateway, controller } = started.seller);
    await proxy.start(started.endpoint);
    await waitFor(
      "the offer routed",
      async () => (await fetch(`${proxy.url}/v1/chat/completions`, { method: "POST" })).status === 402,
      { timeoutMs: 10_000 },
    );
    buyerPort = await freePort();
    buyerUrl = `http://127.0.0.1:${buyerPort}`;
    await createObject(cp, namespace, "purchaserequests", "PurchaseRequest", "channel", {
      endpoint: proxy.url,
      model: "channel-model",
      payment: {
        network: chain.network,
        asset: chain.asset.address,
        decimals: 6,
        maxPrice: "0.001",
        rpcUrl: chain.anvil.rpcUrl,
      },
      budget: { maxPerRequest: "0.001", maxTotal: "0.0105" },
      channels: { deposit: "0.006" },
    });
  });

  after(async () => {
    await Promise.all([buyerProc?.stop(), gateway?.stop(), controller?.stop(), facilitator?.stop()]);
    await proxy.stop();
    await upstream.stop();
    await chain?.stop();
  });

  it("one deposit pays many calls by voucher, a restarted buyer continues the channel, a top-up within the budget, a refusal before paying past maxTotal, the idle refund back in the wallet and the ledger, the channel topped up after it, and a refund the buyer missed found when the seller refuses its voucher", async () => {
    const walletBefore = await chain.balanceOf(buyer.address);
    const wallet = async () => walletBefore - (await chain.balanceOf(buyer.address));
    await startBuyer();
    for (let i = 1; i <= CALLS; i++) {
      if (i === RESTART_AFTER + 1) {
        // The buyer dies without a chance to flush anything; a new one takes the same ledger.
        buyerProc!.child.kill("SIGKILL");
        await new Promise((resolve) => buyerProc!.child.once("exit", resolve));
        await startBuyer();
      }
      const res = await call();
      assert.equal(res.status, 200, `call ${i}: ${res.text}`);
      // The deposit left the wallet once for calls 1–6, the top-up once for calls 7–10.
      assert.equal(await wallet(), i <= 6 ? FIRST_DEPOSIT : FIRST_DEPOSIT + TOP_UP, `wallet after call ${i}`);
    }
    const paid = proxy.payments();
    assert.equal(paid.length, CALLS, "one payment per call, none refused and re-sent");
    const channel = at(paid, 0).channel;
    paid.forEach((p, i) => {
      assert.equal(p.channel, channel, `call ${i + 1} pays the same channel`);
      assert.equal(p.cumulative, PRICE * BigInt(i + 1), `call ${i + 1} signs the cumulative amount`);
      assert.equal(p.type, i === 0 || i === 6 ? "deposit" : "voucher", `call ${i + 1}`);
    });
    assert.equal(upstream.requests.filter((r) => !r.url.startsWith("/health")).length, CALLS);

    // The deposits are what the budget counts: 10 500 of maxTotal 10 500, once.
    await waitFor(
      "the status counts the deposits once",
      async () => {
        const s = await status();
        return s?.spentTotal === "0.0105" && s.requests === CALLS && s.channels?.charged === "0.01";
      },
      { timeoutMs: 15_000 },
    );

    // The next call needs 500 more in the channel: the budget has none left, so nothing is signed.
    const sentBefore = proxy.requests.length;
    const refused = await call();
    assert.equal(refused.status, 402, refused.text);
    assert.equal(JSON.parse(refused.text).error.type, "over_max_total");
    assert.equal(proxy.payments().length, CALLS, "no payment sent for the refused call");
    assert.ok(proxy.requests.slice(sentBefore).every((r) => r === undefined));
    assert.equal(await wallet(), FIRST_DEPOSIT + TOP_UP);

    // The seller claims the vouchers: it receives exactly what the calls were charged.
    await waitFor(
      "the seller paid for every call",
      async () => (await chain.balanceOf(payTo)) === PRICE * 10n,
      {
        timeoutMs: 120_000,
        intervalMs: 1000,
      },
    );
    // Idle for 60 s, the channel is refunded: the unused 500 returns to the wallet, and the
    // buyer's ledger and status take it off the spend.
    await waitFor("the unused deposit back in the wallet", async () => (await wallet()) === PRICE * 10n, {
      timeoutMs: 240_000,
      intervalMs: 1000,
    });
    await waitFor(
      "the refund in the buyer's status",
      async () => {
        const s = await status();
        return (
          s?.spentTotal === "0.01" &&
          s.requests === CALLS &&
          s.channels?.deposited === "0.0105" &&
          s.channels.refunded === "0.0005"
        );
      },
      { timeoutMs: 15_000 },
    );

    // The refunded channel goes on: with maxTotal raised to 0.012, the next call tops it up with
    // what the budget leaves (0.002) and signs the next cumulative amount on the same channel.
    await mergePatch(cp, namespace, "purchaserequests", "channel", {
      spec: { budget: { maxTotal: "0.012" } },
    });
    await waitFor(
      "a call paid after the refund",
      async () => {
        const res = await call();
        if (res.status === 402 && JSON.parse(res.text).error.type === "over_max_total") return false;
        assert.equal(res.status, 200, res.text);
        return true;
      },
      { timeoutMs: 15_000 },
    );
    const after = proxy.payments().slice(CALLS);
    assert.deepEqual(after, [{ type: "deposit", channel, cumulative: PRICE * 11n }]);
    assert.equal(await wallet(), PRICE * 10n + 2000n);
    await waitFor(
      "the top-up in the buyer's status",
      async () => {
        const s = await status();
        return s?.spentTotal === "0.012" && s.requests === CALLS + 1 && s.channels?.deposited === "0.0125";
      },
      { timeoutMs: 15_000 },
    );

    // A refund the buyer has not seen: restarted without its periodic check (it reads its channels
    // once, at start, before the refund), its record still shows 1000 unused after the seller
    // refunded them, so its next voucher is above the channel's balance and refused; the buyer
    // then reads the refund on chain and pays the call again with a top-up (what maxTotal leaves).
    buyerProc!.child.kill("SIGKILL");
    await new Promise((resolve) => buyerProc!.child.once("exit", resolve));
    await startBuyer(600_000);
    await waitFor("the second idle refund on chain", async () => (await wallet()) === PRICE * 11n, {
      timeoutMs: 240_000,
      intervalMs: 1000,
    });
    const late = await call();
    assert.equal(late.status, 200, late.text);
    assert.deepEqual(proxy.payments().slice(CALLS + 1), [
      { type: "voucher", channel, cumulative: PRICE * 12n },
      { type: "deposit", channel, cumulative: PRICE * 12n },
    ]);
    assert.equal(await wallet(), PRICE * 12n);
    await waitFor(
      "the late refund and the top-up in the buyer's status",
      async () => {
        const s = await status();
        return (
          s?.spentTotal === "0.012" &&
          s.requests === CALLS + 2 &&
          s.channels?.deposited === "0.0135" &&
          s.channels.refunded === "0.0015" &&
          s.channels.charged === "0.012"
        );
      },
      { timeoutMs: 15_000 },
    );
  });
});
