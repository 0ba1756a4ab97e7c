/**
 * Interoperability with x402 software this project did not write, every part a real process on
 * loopback with anvil: third-party buyers paying the gateway, the buyer proxy paying third-party
 * sellers, and a third-party server settling through the self-run facilitator. (The x402-rs
 * facilitator behind the gateway is in x402rs.test.ts.) The versions tested are pinned in
 * package.json and listed in the README's Tests section.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import {
  x402Client as axiosX402Client,
  decodePaymentResponseHeader as decodeAxiosReceipt,
  wrapAxiosWithPayment,
} from "@x402/axios";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { decodePaymentResponseHeader as decodeFetchReceipt, wrapFetchWithPayment } from "@x402/fetch";
import axios from "axios";
import fc from "fast-check";
import { type Address, createWalletClient, http as viemHttp } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { decodeXPaymentResponse, wrapFetchWithPayment as wrapFetchWithPaymentV1 } from "x402-fetch";
import { ANVIL_KEYS } from "../harness/anvil";
import { first } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { headerValueOf, mutatedPaymentOf } from "../harness/paymentArbitraries";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, startProcess, waitFor } from "../harness/processes";
import { v2Client } from "../harness/x402Buyers";
import {
  createNamespace,
  createObject,
  createPaidOffer,
  getObject,
  installCrds,
  REPO,
  type SellerRuntime,
  startRuntime,
  startSellerRuntime,
  TSX_LOADER,
  Upstream,
  waitForCondition,
  waitForHttp,
} from "./runtime/helpers";

const PRICE = 1000n; // 0.001 of a 6-decimals token

/** A loopback relay in front of the facilitator that counts what the gateway asks it. */
class CountingRelay {
  readonly calls = { verify: 0, settle: 0 };
  private server?: http.Server;
  url = "";

  async start(target: string): Promise<void> {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/verify" || path === "/settle") this.calls[path.slice(1) as "verify" | "settle"]++;
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        try {
          const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
          const up = await fetch(`${target}${req.url}`, {
            method: req.method ?? "GET",
            headers: { "content-type": String(req.headers["content-type"] ?? "application/json") },
            ...(body ? { body } : {}),
          });
          res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" });
          res.end(Buffer.from(await up.arrayBuffer()));
        } catch {
          res.destroy();
        }
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => this.server?.listen(port, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("x402 interoperability with third-party implementations (real processes, anvil)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let facilitatorUrl: string;
  const relay = new CountingRelay();
  let seller: SellerRuntime;
  let logDir: string;
  let ns: string;
  const upstream = new Upstream();
  const facilitatorAccount = privateKeyToAccount(ANVIL_KEYS[0]);
  const payer = privateKeyToAccount(ANVIL_KEYS[2]);
  const gatewayPayTo = privateKeyToAccount(generatePrivateKey()).address;
  const offerUrl = () => `${seller.publicUrl}/services/interop`;
  const served = (url: string) => upstream.requests.filter((r) => r.url === url).length;

  /** Runs `pay` and asserts that exactly one price moved from `from` to `to`. */
  async function movesOnce<T>(from: Address, to: Address, pay: () => Promise<T>): Promise<T> {
    const [fromBefore, toBefore] = [await chain.balanceOf(from), await chain.balanceOf(to)];
    const result = await pay();
    assert.equal(await chain.balanceOf(from), fromBefore - PRICE, "the payer paid the price once");
    assert.equal(await chain.balanceOf(to), toBefore + PRICE, "the seller received the price once");
    return result;
  }

  before(async () => {
    logDir = path.join(scratchDir("interop"), "logs");
    cp = await sharedControlPlane();
    await installCrds(cp);
    ns = `interop-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.mint(payer.address, 10_000_000n);
    await upstream.start();
    const facilitatorPort = await freePort();
    facilitatorUrl = `http://127.0.0.1:${facilitatorPort}`;
    facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: ANVIL_KEYS[0],
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
    });
    await waitForHttp("the facilitator", `${facilitatorUrl}/supported`, facilitator);
    await relay.start(facilitatorUrl);
    seller = await startSellerRuntime({ cp, namespace: ns, logDir, facilitatorUrl: relay.url });
    await createPaidOffer(cp, ns, "interop", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo: gatewayPayTo,
      asset: chain.asset,
      logs: [seller.controller, seller.gateway],
      routedAt: [seller.publicUrl],
    });
  });

  after(async () => {
    await Promise.all([seller?.stop(), facilitator?.stop()]);
    await Promise.all([upstream.stop(), relay.stop()]);
    await chain?.stop();
  });

  describe("the gateway ← third-party buyers", () => {
    it("@x402/fetch (v2): pays once, PAYMENT-RESPONSE decodes with @x402/fetch's decoder", async () => {
      const res = await movesOnce(payer.address, gatewayPayTo, () =>
        wrapFetchWithPayment(fetch, v2Client(payer))(`${offerUrl()}/x402-fetch`),
      );
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as { url: string }).url, "/x402-fetch");
      const receipt = decodeFetchReceipt(res.headers.get("payment-response")!);
      assert.deepEqual(
        { success: receipt.success, network: receipt.network, payer: receipt.payer?.toLowerCase() },
        { success: true, network: chain.network, payer: payer.address.toLowerCase() },
      );
      assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
      assert.equal(served("/x402-fetch"), 1);
    });

    it("x402-fetch 1.x (v1: X-PAYMENT, base-sepolia): pays once, X-PAYMENT-RESPONSE decodes with its decoder", async () => {
      // The v1 SDK signs with a viem wallet client whose chain is the network's (Base Sepolia's id).
      const wallet = createWalletClient({
        account: payer,
        chain: baseSepolia,
        transport: viemHttp(chain.anvil.rpcUrl),
      });
      const res = await movesOnce(payer.address, gatewayPayTo, () =>
        wrapFetchWithPaymentV1(fetch, wallet as never)(`${offerUrl()}/x402-fetch-v1`),
      );
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as { url: string }).url, "/x402-fetch-v1");
      assert.equal(res.headers.get("payment-response"), null, "a v1 buyer gets the v1 header");
      const receipt = decodeXPaymentResponse(res.headers.get("x-payment-response")!);
      assert.equal(receipt.success, true);
      assert.equal(receipt.network, "base-sepolia", "the v1 receipt names the network the v1 way");
      assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
      assert.equal(served("/x402-fetch-v1"), 1);
    });

    it("@x402/axios (v2): pays once, PAYMENT-RESPONSE decodes with @x402/axios's decoder", async () => {
      const client = new axiosX402Client();
      client.register("eip155:*", new ExactEvmScheme(payer) as never);
      const api = wrapAxiosWithPayment(axios.create(), client);
      const res = await movesOnce(payer.address, gatewayPayTo, () => api.get(`${offerUrl()}/x402-axios`));
      assert.equal(res.status, 200);
      assert.equal((res.data as { url: string }).url, "/x402-axios");
      const receipt = decodeAxiosReceipt(res.headers["payment-response"] as string);
      assert.equal(receipt.success, true);
      assert.equal(receipt.network, chain.network);
      assert.equal(served("/x402-axios"), 1);
    });
  });

  describe("the buyer proxy → third-party sellers, all settling through the self-run facilitator", () => {
    const buyerAccount = privateKeyToAccount(ANVIL_KEYS[3]);
    let buyer: ManagedProcess;
    let buyerUrl: string;
    const sellers: { label: string; model: string; payTo: Address; url: string; proc?: ManagedProcess }[] = [
      { label: "@x402/express (v2)", model: "express-v2", payTo: "0x" as Address, url: "" },
      { label: "@x402/hono (v2, @hono/node-server)", model: "hono", payTo: "0x" as Address, url: "" },
      {
        label: "x402-express 1.x (v1 only: X-PAYMENT, base-sepolia)",
        model: "express-v1",
        payTo: "0x" as Address,
        url: "",
      },
    ];

    /** A third-party seller as its own process; resolves when it answers 402. */
    async function startSeller(s: (typeof sellers)[number]): Promise<void> {
      const port = await freePort();
      s.payTo = privateKeyToAccount(generatePrivateKey()).address;
      s.url = `http://127.0.0.1:${port}`;
      const common = [facilitatorUrl, chain.network, s.payTo, JSON.stringify(chain.asset)];
      s.proc =
        s.model === "express-v2"
          ? startProcess(
              "seller-express-v2",
              process.execPath,
              [
                ...["--import", TSX_LOADER, path.join(REPO, "bench/expressPeer.ts")],
                ...[String(port), String(upstream.port), ...common, "POST /*", "GET /paid"],
              ],
              { logDir, cwd: REPO },
            )
          : startProcess(
              `seller-${s.model}`,
              process.execPath,
              [
                "--import",
                TSX_LOADER,
                path.join(REPO, "tests/harness/x402Sellers.ts"),
                s.model,
                String(port),
                ...common,
              ],
              { logDir, cwd: REPO },
            );
      await waitFor(`the ${s.label} seller`, async () => (await fetch(`${s.url}/paid`)).status === 402, {
        timeoutMs: 60_000,
      });
    }

    before(async () => {
      await chain.mint(buyerAccount.address, 10_000_000n);
      await Promise.all(sellers.map(startSeller));
      for (const s of sellers) {
        await createObject(cp, ns, "purchaserequests", "PurchaseRequest", s.model, {
          endpoint: s.url,
          model: s.model,
          payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice: "0.001" },
          budget: { maxPerRequest: "0.001", maxTotal: "0.001" },
        });
      }
      const port = await freePort();
      buyerUrl = `http://127.0.0.1:${port}`;
      buyer = startRuntime(
        "buyer",
        "buyer",
        ["--kubeconfig", cp.kubeconfigPath, "--namespace", ns, "--port", String(port), "--host", "127.0.0.1"],
        logDir,
        { SIGNER_KEY: ANVIL_KEYS[3], LEDGER_PATH: path.join(logDir, "..", "buyer-ledger.jsonl") },
      );
      await waitForHttp("the buyer", `${buyerUrl}/healthz`, buyer);
    });

    after(async () => {
      await Promise.all([buyer?.stop(), ...sellers.map((s) => s.proc?.stop())]);
    });

    for (const s of sellers) {
      it(`pays a seller built with ${s.label}: the probe and the buyer agree, the price moves once`, async () => {
        // The controller's probe reads the seller's 402 and finds it payable ...
        const probed = await waitForCondition(cp, ns, "purchaserequests", s.model, {
          type: "Ready",
          status: "True",
        });
        assert.equal(probed.status?.probedPrice, "0.001");
        // ... and the buyer then pays it.
        const res = await movesOnce(buyerAccount.address, s.payTo, () =>
          fetch(`${buyerUrl}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: `paid/${s.model}`, messages: [{ role: "user", content: "hi" }] }),
          }),
        );
        assert.equal(res.status, 200, await res.clone().text());
        const body = (await res.json()) as { seller?: string; url?: string };
        assert.ok(body.seller === s.model || body.url === "/v1/chat/completions", JSON.stringify(body));
        await waitFor(
          `PurchaseRequest ${s.model} counts the spend`,
          async () => {
            const status = (await getObject(cp, ns, "purchaserequests", s.model))?.status;
            return status?.spentTotal === "0.001" && status.requests === 1;
          },
          { timeoutMs: 10_000 },
        );
        // The budget (maxTotal 0.001) is spent: a second request is refused before paying.
        const before = await chain.balanceOf(buyerAccount.address);
        const over = await fetch(`${buyerUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: s.model, messages: [] }),
        });
        assert.equal(over.status, 402);
        assert.equal(((await over.json()) as { error: { type: string } }).error.type, "over_max_total");
        assert.equal(await chain.balanceOf(buyerAccount.address), before);
      });
    }

    it("@x402/express middleware settles through the self-run facilitator: its key sends the transfer", async () => {
      const express = first(sellers);
      const res = await movesOnce(payer.address, express.payTo, () =>
        wrapFetchWithPayment(fetch, v2Client(payer))(`${express.url}/paid`),
      );
      assert.equal(res.status, 200, await res.clone().text());
      const receipt = decodeFetchReceipt(res.headers.get("payment-response")!);
      const tx = await chain.client.getTransaction({ hash: receipt.transaction as `0x${string}` });
      assert.equal(tx.from.toLowerCase(), facilitatorAccount.address.toLowerCase());
      assert.equal(
        tx.to?.toLowerCase(),
        chain.asset.address.toLowerCase(),
        "an EIP-3009 transfer on the token",
      );
    });
  });

  describe("the gateway under arbitrary payment headers (fast-check, 200 cases)", () => {
    it("never answers 5xx, never reaches the upstream, never settles", async () => {
      const res402 = await fetch(`${offerUrl()}/fuzz`);
      const required = decodePaymentRequiredHeader(res402.headers.get("payment-required") ?? "");
      const v1Requirement = first(((await res402.json()) as { accepts: { network: string }[] }).accepts);
      const authorization = () => ({
        from: payer.address,
        to: gatewayPayTo,
        value: PRICE.toString(),
        validAfter: "0",
        validBefore: String(Math.floor(Date.now() / 1000) + 300),
        nonce: `0x${"ab".repeat(32)}`,
      });
      // Well-formed payments for this offer, except for the signature (nothing here can settle).
      const signature = `0x${"11".repeat(65)}`;
      const validV2 = () => ({
        x402Version: 2,
        accepted: { ...first(required.accepts) },
        payload: { signature, authorization: authorization() },
      });
      const validV1 = () => ({
        x402Version: 1,
        scheme: "exact",
        network: v1Requirement.network,
        payload: { signature, authorization: authorization() },
      });
      const before = { ...relay.calls };
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("payment-signature", "x-payment"),
          headerValueOf(mutatedPaymentOf(validV2, validV1)),
          async (name, value) => {
            const res = await fetch(`${offerUrl()}/fuzz`, { headers: { [name]: value } });
            const text = await res.text();
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            assert.ok(res.status < 500, `${res.status} ${text} for ${name}: ${value.slice(0, 200)}`);
            assert.ok([400, 402].includes(res.status), `${res.status} ${text}`);
          },
        ),
        { numRuns: 200 },
      );
      assert.equal(served("/fuzz"), 0, "nothing reached the upstream");
      assert.equal(relay.calls.settle, before.settle, "nothing was settled");
      // The generator reaches the facilitator's verification too, not only the header parser.
      assert.ok(relay.calls.verify > before.verify, `statuses ${JSON.stringify([...statuses])}`);
    });
  });
});
