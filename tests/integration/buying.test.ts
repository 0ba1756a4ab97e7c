/**
 * Buying by ERC-8004 agent id, and a budget that survives the loss of the buyer's volume. Real
 * processes on loopback: anvil with the test IdentityRegistry and an EIP-3009 token, the
 * self-run facilitator, the seller's gateway and controller (serving the registration document
 * at /.well-known/agent-registration.json), an upstream, and the buyer proxy.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { type Address, createWalletClient, http, parseAbi } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../harness/anvil";
import { defined, only } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { deployIdentityRegistry, registerAgent } from "../harness/identityRegistry";
import { startLossyProxy } from "../harness/lossyProxy";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import {
  api,
  createNamespace,
  createObject,
  createPaidOffer,
  crPath,
  getObject,
  installCrds,
  type SellerRuntime,
  startBuyerProcess,
  startFacilitatorProcess,
  startSellerRuntime,
  Upstream,
  waitForCondition,
} from "./runtime/helpers";

const PRICE_ATOMIC = 1000n; // "0.001" with 6 decimals

describe("buying by ERC-8004 agent id; the budget survives a lost ledger (anvil, real processes)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let registry: Address;
  let facilitator: ManagedProcess;
  let seller: SellerRuntime;
  let buyerProc: ManagedProcess | undefined;
  let buyerUrl: string;
  let ledgerPath: string;
  let logDir: string;
  let ns: string;
  const upstream = new Upstream();
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const buyer = privateKeyToAccount(ANVIL_KEYS[3]);
  const agents = { alice: "", impostor: "", onChainDoc: "" };

  const agentRef = (agentId: string) => ({
    network: chain.network,
    registry,
    agentId,
    rpcUrl: chain.anvil.rpcUrl,
  });
  const purchase = (name: string, agentId: string, model: string, maxPrice = "0.001", extra = {}) =>
    createObject(cp, ns, "purchaserequests", "PurchaseRequest", name, {
      agent: agentRef(agentId),
      model,
      payment: {
        network: chain.network,
        asset: chain.asset.address,
        decimals: 6,
        maxPrice,
        rpcUrl: chain.anvil.rpcUrl,
      },
      budget: { maxPerRequest: maxPrice, ...extra },
    });
  const chat = (model: string) =>
    fetch(`${buyerUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
    });
  const startBuyer = async () => {
    ({ proc: buyerProc, url: buyerUrl } = await startBuyerProcess({
      cp,
      namespace: ns,
      logDir,
      signerKey: ANVIL_KEYS[3],
      ledgerPath,
    }));
  };
  const spendStatus = async (name: string) =>
    (await getObject(cp, ns, "purchaserequests", name))?.status as
      | { spentTotal?: string; requests?: number; endpoint?: string }
      | undefined;

  before(async () => {
    logDir = path.join(scratchDir("buying"), "logs");
    ledgerPath = path.join(logDir, "..", "buyer", "ledger.jsonl");
    cp = await sharedControlPlane();
    await installCrds(cp);
    ns = `buy-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    registry = await deployIdentityRegistry(chain.anvil.rpcUrl);
    await chain.mint(buyer.address, 10_000_000n);
    await upstream.start();
    const facilitatorPort = await freePort();
    facilitator = await startFacilitatorProcess({
      logDir,
      rpcUrl: chain.anvil.rpcUrl,
      port: facilitatorPort,
      signerKey: ANVIL_KEYS[0],
    });
    seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir,
      facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
      controllerArgs: ["--probe-interval-ms", "1000", "--purchase-probe-interval-ms", "1000"],
    });
    const offer = (name: string, extra: Record<string, unknown>) =>
      createPaidOffer(cp, ns, name, {
        upstreamPort: upstream.port,
        network: chain.network,
        payTo,
        asset: chain.asset,
        extra,
        logs: [seller.controller, seller.gateway],
      });
    await offer("llama", { type: "inference", model: { name: "llama3" } });
    await offer("docs", {});

    // Alice registers with the gateway's registration document; an impostor points its own
    // agent at Alice's document (which does not name it); a third agent keeps its document on
    // chain as a data: URI.
    const wellKnown = `${seller.publicUrl}/.well-known/agent-registration.json`;
    agents.alice = await registerAgent(chain.anvil.rpcUrl, registry, wellKnown);
    agents.impostor = await registerAgent(chain.anvil.rpcUrl, registry, wellKnown, ANVIL_KEYS[2]);
    agents.onChainDoc = await registerAgent(chain.anvil.rpcUrl, registry, "", ANVIL_KEYS[2]);
    const doc = {
      type: "https://eips.ethereum.org/EIPS/eip-8004#registration-v1",
      name: "On-chain Alice",
      services: [{ name: "llama", endpoint: `${seller.publicUrl}/services/llama`, model: "llama3-onchain" }],
      active: true,
      registrations: [{ agentId: Number(agents.onChainDoc), agentRegistry: `${chain.network}:${registry}` }],
    };
    const owner = createWalletClient({
      account: privateKeyToAccount(ANVIL_KEYS[2]),
      transport: http(chain.anvil.rpcUrl),
    });
    const hash = await owner.writeContract({
      address: registry,
      abi: parseAbi(["function setAgentURI(uint256 agentId, string newURI)"]),
      functionName: "setAgentURI",
      args: [
        BigInt(agents.onChainDoc),
        `data:application/json;base64,${Buffer.from(JSON.stringify(doc)).toString("base64")}`,
      ],
      chain: null,
    });
    await chain.client.waitForTransactionReceipt({ hash });
    await createObject(cp, ns, "agentidentities", "AgentIdentity", "default", {
      name: "Alice",
      description: "sells llama3",
      registrations: [{ network: chain.network, agentId: agents.alice, registry }],
    });
    await waitFor(
      "the registration document to name Alice's agent",
      async () => (await (await fetch(wellKnown)).text()).includes(`"agentId": ${agents.alice}`),
      { timeoutMs: 10_000 },
    );

    const origin = await chain.client.getBlockNumber();
    await purchase("by-agent", agents.alice, "llama3", "0.001", {
      maxTotal: "0.002",
      countFromBlock: origin.toString(),
    });
    await purchase("impostor", agents.impostor, "impostor-model");
    // Its budget is below the price: resolving it reaches the seller, paying it never happens.
    await purchase("on-chain-doc", agents.onChainDoc, "llama3-onchain", "0.0005");
    await purchase("no-such-agent", "4242", "other-model");
    await startBuyer();
  });

  after(async () => {
    await buyerProc?.stop();
    await Promise.all([seller?.stop(), facilitator?.stop()]);
    await upstream.stop();
    await chain?.stop();
  });

  it("the controller resolves tokenURI → registration document → the offer's endpoint, and refuses what does not check out", async () => {
    const ready = await waitForCondition(
      cp,
      ns,
      "purchaserequests",
      "by-agent",
      { type: "Ready", status: "True" },
      {
        logs: [seller.controller],
      },
    );
    assert.equal((ready.status as { endpoint?: string }).endpoint, `${seller.publicUrl}/services/llama`);
    const impostor = await waitForCondition(cp, ns, "purchaserequests", "impostor", {
      type: "Ready",
      status: "False",
      reason: "AgentMismatch",
    });
    assert.match(
      impostor.status!.conditions!.find((c) => c.type === "Ready")!.message!,
      new RegExp(`does not name agent ${chain.network}:${registry}#${agents.impostor}`),
    );
    const missing = await waitForCondition(cp, ns, "purchaserequests", "no-such-agent", {
      type: "Ready",
      status: "False",
      reason: "AgentUnresolved",
    });
    assert.match(
      missing.status!.conditions!.find((c) => c.type === "Ready")!.message!,
      /tokenURI of agent .*#4242/,
    );
    // A data: URI document on chain: resolved to the same offer, whose price is above this maxPrice.
    const onChain = await waitForCondition(cp, ns, "purchaserequests", "on-chain-doc", {
      type: "Ready",
      status: "False",
      reason: "PricingMismatch",
    });
    assert.equal((onChain.status as { endpoint?: string }).endpoint, `${seller.publicUrl}/services/llama`);
    assert.match(
      onChain.status!.conditions!.find((c) => c.type === "Ready")!.message!,
      /asks 0\.001 per request, more than maxPrice 0\.0005/,
    );
  });

  it("the buyer pays the seller it found by agent id: payTo rises by exactly the price", async () => {
    const before = await chain.balanceOf(payTo);
    const res = await chat("paid/llama3");
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(await chain.balanceOf(payTo), before + PRICE_ATOMIC);
    const seen = only(upstream.requests.filter((r) => r.url === "/v1/chat/completions"));
    assert.equal(seen.headers["user-agent"], "obol-stack-buyer/0.1");
    await waitFor("spend counted", async () => (await spendStatus("by-agent"))?.spentTotal === "0.001", {
      timeoutMs: 10_000,
    });
  });

  it("payment-identifier: when the answer to a paid call is lost, the buyer sends the same payment again and gets the answer; served once, settled once", async () => {
    // An offer of its own (its own payee: the other purchases' chain recovery does not see it),
    // reached through a relay that loses the answer to the first paid request.
    const lossyPayTo = privateKeyToAccount(generatePrivateKey()).address;
    await createPaidOffer(cp, ns, "lossy-docs", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo: lossyPayTo,
      asset: chain.asset,
      extra: {},
      logs: [seller.controller, seller.gateway],
      routedAt: [seller.publicUrl],
    });
    const lossy = await startLossyProxy(Number(new URL(seller.publicUrl).port), 1);
    try {
      await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "lossy", {
        endpoint: `${lossy.url}/services/lossy-docs`,
        model: "lossy-model",
        payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice: "0.001" },
        budget: { maxPerRequest: "0.001" },
      });
      const served = () =>
        upstream.requests.filter(
          (r) =>
            r.url === "/v1/chat/completions" && r.headers["x-forwarded-prefix"] === "/services/lossy-docs",
        ).length;
      const [sellerBefore, servedBefore] = [await chain.balanceOf(lossyPayTo), served()];
      let res: Response | undefined;
      await waitFor(
        "the buyer to see the purchase and call it",
        async () => {
          res = await chat("lossy-model");
          return res.status !== 404;
        },
        { timeoutMs: 20_000 },
      );
      const answer = defined(res, "the call");
      assert.equal(answer.status, 200, await answer.clone().text());
      assert.equal(((await answer.json()) as { url: string }).url, "/v1/chat/completions");
      assert.ok(answer.headers.get("payment-response"), "the receipt came with the answer");
      assert.equal(lossy.dropped, 1, "the first answer was lost on the way");
      assert.equal(served() - servedBefore, 1, "the upstream served the call once");
      assert.equal(await chain.balanceOf(lossyPayTo), sellerBefore + PRICE_ATOMIC, "settled once");
      await waitFor(
        "the purchase's spend counted once",
        async () => {
          const status = await spendStatus("lossy");
          return status?.spentTotal === "0.001" && status.requests === 1;
        },
        { timeoutMs: 10_000 },
      );
    } finally {
      await lossy.close();
      await api(cp, "DELETE", crPath(ns, "purchaserequests", "lossy"));
    }
  });

  it("refuses an agent whose document does not name it, before any payment, with the reason the agent sees", async () => {
    // The controller's health checks also reach the upstream; count only what was served.
    const served = () => upstream.requests.filter((r) => !r.url.startsWith("/health")).length;
    const before = [await chain.balanceOf(buyer.address), served()];
    const res = await chat("paid/impostor-model");
    assert.equal(res.status, 502);
    const body = (await res.json()) as { error: { type: string; code: string; message: string } };
    assert.equal(body.error.type, "seller_not_resolved");
    assert.equal(body.error.code, "AgentMismatch");
    assert.match(body.error.message, /does not name agent/);
    const missing = (await (await chat("paid/other-model")).json()) as { error: { code: string } };
    assert.equal(missing.error.code, "AgentUnresolved");
    assert.deepEqual([await chain.balanceOf(buyer.address), served()], before);
  });

  it("follows a registration document kept on chain as a data: URI to the seller", async () => {
    const before = await chain.balanceOf(buyer.address);
    const res = await chat("paid/llama3-onchain");
    // Resolved and asked for its terms: the seller's price is above this purchase's maxPrice.
    assert.equal(res.status, 402, await res.clone().text());
    assert.equal(((await res.json()) as { error: { type: string } }).error.type, "over_max_price");
    assert.equal(await chain.balanceOf(buyer.address), before);
  });

  it("after the ledger is lost, the restarted buyer recovers the spend from the chain: status and maxTotal hold", async () => {
    const second = await chat("paid/llama3");
    assert.equal(second.status, 200, await second.clone().text());
    await waitFor("spend counted", async () => (await spendStatus("by-agent"))?.spentTotal === "0.002", {
      timeoutMs: 10_000,
    });
    const before = await chain.balanceOf(buyer.address);

    await buyerProc!.stop();
    fs.rmSync(path.dirname(ledgerPath), { recursive: true, force: true });
    // As on a fresh cluster, the status no longer knows the spend either.
    const reset = await api(
      cp,
      "PATCH",
      `${crPath(ns, "purchaserequests", "by-agent")}/status`,
      { status: { spentTotal: "0", spentToday: "0", requests: 0 } },
      "application/merge-patch+json",
    );
    assert.equal(reset.status, 200, reset.body);
    assert.equal((await spendStatus("by-agent"))?.spentTotal, "0");
    await startBuyer();

    await waitFor(
      "the recovered spend in the PurchaseRequest status",
      async () => {
        const s = await spendStatus("by-agent");
        return s?.spentTotal === "0.002" && s.requests === 2;
      },
      { timeoutMs: 20_000 },
    );
    const ledger = fs.readFileSync(ledgerPath, "utf8");
    assert.equal(ledger.match(/"kind":"recovered"/g)?.length, 2, ledger);

    const over = await chat("paid/llama3");
    assert.equal(over.status, 402);
    assert.equal(((await over.json()) as { error: { type: string } }).error.type, "over_max_total");
    assert.equal(await chain.balanceOf(buyer.address), before, "nothing more was paid");
  });
});
