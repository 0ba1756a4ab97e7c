/**
 * x402 end to end, every part a real process on loopback: anvil with an EIP-3009 token, the
 * self-run facilitator, the controller, the gateway (watching the control plane), a real
 * upstream, and buyers using @x402/fetch and hand-made payment headers.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import type { PaymentPayload, PaymentRequired } from "@x402/core/types";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import {
  appendPaymentIdentifierToExtensions,
  generatePaymentId,
  PAYMENT_IDENTIFIER,
} from "@x402/extensions/payment-identifier";
import {
  createSIWxPayload,
  encodeSIWxHeader,
  SIGN_IN_WITH_X,
  type SIWxExtension,
} from "@x402/extensions/sign-in-with-x";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { DRAIN_FINALIZER } from "../../api/drain";
import { ANVIL_KEYS } from "../harness/anvil";
import { at, defined } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type HostileSeller, startHostileSeller } from "../harness/hostileSeller";
import {
  type PaymentChain,
  startPaymentChain,
  X402_EXACT_PERMIT2_PROXY_ADDRESS,
} from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import {
  createNamespace,
  createObject,
  createPaidOffer,
  deleteObject,
  getObject,
  installCrds,
  mergePatch,
  startRuntime,
  startSellerRuntime,
  waitForHttp,
  waitForSpend,
} from "./runtime/helpers";

const PRICE_ATOMIC = 1000n; // "0.001" with 6 decimals

/**
 * An upstream with a JSON route, a failing route, and a server-sent-events stream that sends its
 * first event and holds the rest until the test calls `releaseStreams()`: a client that sees the
 * first event before the release proves the gateway streams instead of buffering, without timing.
 */
class PaidUpstream {
  readonly seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  private server?: http.Server;
  private held: (() => void)[] = [];
  port = 0;

  releaseStreams(): void {
    for (const release of this.held.splice(0)) release();
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = http.createServer((req, res) => {
      this.seen.push({ url: req.url ?? "", headers: req.headers });
      if (req.url === "/health") return void res.writeHead(200).end("ok");
      if (req.url?.startsWith("/fail"))
        return void res.writeHead(500, { "content-type": "application/json" }).end('{"error":"boom"}');
      if (req.url?.startsWith("/hold")) {
        // Answers nothing (not even its head, so nothing is settled yet) until released.
        this.held.push(() =>
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ held: req.url })),
        );
        return;
      }
      if (req.url?.startsWith("/echo")) {
        // Answers with the body it received (what the gateway forwarded).
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () =>
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ received: Buffer.concat(chunks).toString("utf8") })),
        );
        return;
      }
      if (req.url?.startsWith("/stream")) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write("data: token-0\n\n");
        this.held.push(() => {
          for (let n = 1; n < 4; n++) res.write(`data: token-${n}\n\n`);
          res.end("data: [DONE]\n\n");
        });
        return;
      }
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ ok: true, url: req.url }));
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("x402 payments end to end (anvil, facilitator, gateway, upstream: real processes)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  const upstream = new PaidUpstream();
  let publicUrl: string;
  let internalUrl: string;
  let facilitatorPort: number;
  let logDir: string;
  const buyerKey = ANVIL_KEYS[2];
  const buyer = privateKeyToAccount(buyerKey);
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;
  const offerUrl = () => `${publicUrl}/services/paid`;
  let ns: string;

  /** An official x402 client paying as `account` (the test tokens are not in the SDK's asset table). */
  const x402ClientFor = (account: typeof buyer = buyer, rpcUrl?: string) => {
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: account, ...(rpcUrl ? { schemeOptions: { rpcUrl } } : {}) });
    client.setSpendControls(false);
    return client;
  };
  const payingFetch = (account: typeof buyer = buyer) => wrapFetchWithPayment(fetch, x402ClientFor(account));

  /** A signed payment for the 402 of `url`, optionally with the requirement tampered before signing. */
  async function signedPayment(
    url: string,
    tamper?: (r: PaymentRequired["accepts"][number]) => void,
    account: typeof buyer = buyer,
  ): Promise<PaymentPayload> {
    const res = await fetch(url);
    const required = decodePaymentRequiredHeader(res.headers.get("payment-required")!);
    if (tamper) tamper(at(required.accepts, 0));
    return x402ClientFor(account).createPaymentPayload(required);
  }

  /** A ServiceOffer on the test upstream, paid with `asset` at 0.001 per request, Ready and routed. */
  const paidOffer = (name: string, asset: object, offerPath: string, extra: Record<string, unknown> = {}) =>
    createPaidOffer(cp, ns, name, {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo,
      asset,
      path: offerPath,
      extra,
      logs: [controller, gateway],
      routedAt: [publicUrl],
    });

  let permit2Offer: Promise<void> | undefined;
  /** The offer paid in the plain ERC-20 through Permit2, created once by whichever suite needs it first. */
  const ensurePermit2Offer = () => {
    permit2Offer ??= paidOffer("paid-permit2", chain.permit2Token.asset, "/services/permit2");
    return permit2Offer;
  };

  const startFacilitator = (env: NodeJS.ProcessEnv = {}) => {
    facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: ANVIL_KEYS[0],
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
      // Automine answers at once; the pending-settlement test stops mining to run this out.
      RECEIPT_TIMEOUT_MS: "4000",
      ...env,
    });
    return waitForHttp("the facilitator", `http://127.0.0.1:${facilitatorPort}/supported`, facilitator);
  };

  before(async () => {
    logDir = path.join(scratchDir("payments"), "logs");
    cp = await sharedControlPlane();
    await installCrds(cp);
    ns = `pay-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.mint(buyer.address, 10_000_000n);
    await upstream.start();
    facilitatorPort = await freePort();
    await startFacilitator();
    const seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir,
      facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
    });
    ({ gateway, controller, publicUrl, internalUrl } = seller);
    await paidOffer("paid", chain.asset, "/services/paid", { description: "A paid echo" });
  });

  after(async () => {
    await Promise.all([gateway?.stop(), controller?.stop(), facilitator?.stop()]);
    await upstream.stop();
    await chain?.stop();
  });

  it("answers an unpaid request with 402: v2 PAYMENT-REQUIRED (CAIP-2) and a v1 body (legacy names)", async () => {
    const res = await fetch(`${offerUrl()}/anything`);
    assert.equal(res.status, 402);
    const v2 = decodePaymentRequiredHeader(res.headers.get("payment-required")!);
    assert.equal(v2.x402Version, 2);
    assert.deepEqual(
      {
        network: at(v2.accepts, 0).network,
        amount: at(v2.accepts, 0).amount,
        payTo: at(v2.accepts, 0).payTo,
        asset: at(v2.accepts, 0).asset,
      },
      { network: "eip155:84532", amount: PRICE_ATOMIC.toString(), payTo, asset: chain.asset.address },
    );
    const v1 = (await res.json()) as {
      x402Version: number;
      accepts: { network: string; maxAmountRequired: string }[];
    };
    assert.equal(v1.x402Version, 1);
    assert.equal(at(v1.accepts, 0).network, "base-sepolia");
    assert.equal(at(v1.accepts, 0).maxAmountRequired, "1000");
    assert.ok(!upstream.seen.some((r) => r.url === "/anything"), "nothing was proxied");
  });

  it("a buyer pays with @x402/fetch: verified, proxied without payment headers, settled on chain, receipt returned", async () => {
    const [buyerBefore, sellerBefore] = [await chain.balanceOf(buyer.address), await chain.balanceOf(payTo)];
    const res = await payingFetch()(`${offerUrl()}/hello`);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), { ok: true, url: "/hello" });
    const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
    assert.equal(receipt.success, true);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC);
    assert.equal(await chain.balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
    const proxied = upstream.seen.find((r) => r.url === "/hello")!;
    assert.equal(proxied.headers["payment-signature"], undefined, "payment headers are stripped");
  });

  it("refuses a replayed payment without proxying or settling", async () => {
    const payment = await signedPayment(`${offerUrl()}/once`);
    const header = encodePaymentSignatureHeader(payment);
    const first = await fetch(`${offerUrl()}/once`, { headers: { "payment-signature": header } });
    assert.equal(first.status, 200);
    const balance = await chain.balanceOf(buyer.address);
    const again = await fetch(`${offerUrl()}/once`, { headers: { "payment-signature": header } });
    assert.equal(again.status, 402);
    assert.equal(((await again.json()) as { error: string }).error, "replayed");
    assert.equal(await chain.balanceOf(buyer.address), balance, "nothing settled twice");
    assert.equal(upstream.seen.filter((r) => r.url === "/once").length, 1, "proxied once");
  });

  it("settles exactly once when 20 copies of one authorization arrive at once", async () => {
    const payment = await signedPayment(`${offerUrl()}/race`);
    const header = encodePaymentSignatureHeader(payment);
    const [buyerBefore, sellerBefore] = [await chain.balanceOf(buyer.address), await chain.balanceOf(payTo)];
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(`${offerUrl()}/race`, { headers: { "payment-signature": header } }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, ...Array(19).fill(402)], JSON.stringify(statuses));
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC);
    assert.equal(await chain.balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
    assert.equal(upstream.seen.filter((r) => r.url === "/race").length, 1, "served once");
  });

  it("settles every one of 40 distinct buyers paying at the same moment (one facilitator key, no nonce race)", async () => {
    const crowd = Array.from({ length: 40 }, () => privateKeyToAccount(generatePrivateKey()));
    for (const account of crowd) await chain.mint(account.address, PRICE_ATOMIC);
    const payments = await Promise.all(
      crowd.map((account) => signedPayment(`${offerUrl()}/crowd`, undefined, account)),
    );
    const sellerBefore = await chain.balanceOf(payTo);
    const results = await Promise.all(
      payments.map((payment) =>
        fetch(`${offerUrl()}/crowd`, {
          headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
        }),
      ),
    );
    const failures = await Promise.all(
      results.filter((r) => r.status !== 200).map(async (r) => `${r.status} ${await r.text()}`),
    );
    assert.deepEqual(failures, [], `${failures.length} of 40 were not served`);
    for (const res of results)
      assert.equal(decodePaymentResponseHeader(res.headers.get("payment-response")!).success, true);
    for (const account of crowd) assert.equal(await chain.balanceOf(account.address), 0n);
    assert.equal(await chain.balanceOf(payTo), sellerBefore + 40n * PRICE_ATOMIC);
    assert.equal(upstream.seen.filter((r) => r.url === "/crowd").length, 40);
  });

  it("the facilitator logs a refused settlement with its reason and payer", async () => {
    // A payment already settled once: settling it again is refused by the facilitator itself.
    const payment = await signedPayment(`${offerUrl()}/settle-twice`);
    const first = await fetch(`${offerUrl()}/settle-twice`, {
      headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
    });
    assert.equal(first.status, 200);
    const res = await fetch(`http://127.0.0.1:${facilitatorPort}/settle`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        x402Version: 2,
        paymentPayload: payment,
        paymentRequirements: payment.accepted,
      }),
    });
    const verdict = (await res.json()) as { success: boolean; errorReason?: string };
    assert.equal(verdict.success, false);
    await waitFor(
      "the facilitator's log line",
      async () =>
        fs
          .readFileSync(facilitator.logFile, "utf8")
          .split("\n")
          .some(
            (line) =>
              line.includes("settle refused") &&
              line.includes(verdict.errorReason!) &&
              line.toLowerCase().includes(buyer.address.toLowerCase()),
          ),
      { timeoutMs: 5_000 },
    );
  });

  describe("bad payments get a reason; nothing is proxied or settled", () => {
    const cases: [string, (r: PaymentRequired["accepts"][number]) => void, RegExp][] = [
      [
        "wrong amount",
        (r) => {
          r.amount = "1";
        },
        /amount_mismatch/,
      ],
      [
        "wrong payTo",
        (r) => {
          r.payTo = "0x000000000000000000000000000000000000dEaD";
        },
        /recipient_mismatch/,
      ],
      [
        "wrong asset",
        (r) => {
          r.asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
        },
        /asset_mismatch/,
      ],
      [
        "wrong network",
        (r) => {
          r.network = "eip155:8453";
        },
        /invalid_network/,
      ],
      [
        "wrong scheme",
        (r) => {
          r.scheme = "upto";
        },
        /unsupported_scheme/,
      ],
    ];
    for (const [what, tamper, reason] of cases) {
      it(what, async () => {
        const balance = await chain.balanceOf(buyer.address);
        const url = `${offerUrl()}/bad-${what.replace(/ /g, "-")}`;
        let payment: PaymentPayload;
        try {
          payment = await signedPayment(url, tamper);
        } catch {
          // The SDK refuses to sign some tampered requirements (e.g. an unknown scheme): forge it.
          payment = await signedPayment(url);
          tamper(payment.accepted);
        }
        const res = await fetch(url, {
          headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
        });
        assert.equal(res.status, 402);
        assert.match(((await res.json()) as { error: string }).error, reason);
        assert.equal(await chain.balanceOf(buyer.address), balance);
        assert.ok(!upstream.seen.some((r) => r.url === new URL(url).pathname.replace("/services/paid", "")));
      });
    }

    it("expired and not-yet-valid authorizations", async () => {
      for (const [field, value, reason] of [
        ["validBefore", "1", /expired/],
        ["validAfter", String(Math.floor(Date.now() / 1000) + 3600), /not_yet_valid/],
      ] as const) {
        const payment = await signedPayment(`${offerUrl()}/time`);
        (payment.payload.authorization as Record<string, string>)[field] = value;
        const res = await fetch(`${offerUrl()}/time`, {
          headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
        });
        assert.equal(res.status, 402);
        assert.match(((await res.json()) as { error: string }).error, reason);
      }
    });

    it("a bad signature is refused by the facilitator's verification", async () => {
      const payment = await signedPayment(`${offerUrl()}/sig`);
      const sig = payment.payload.signature as string;
      payment.payload.signature = `${sig.slice(0, 10)}${sig[10] === "0" ? "1" : "0"}${sig.slice(11)}`;
      const res = await fetch(`${offerUrl()}/sig`, {
        headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
      });
      assert.equal(res.status, 402);
      assert.match(((await res.json()) as { error: string }).error, /signature/);
      assert.ok(!upstream.seen.some((r) => r.url === "/sig"));
    });

    it("malformed, wrong-version and oversized headers", async () => {
      const url = `${offerUrl()}/malformed`;
      const malformed = await fetch(url, { headers: { "payment-signature": "not base64 !!" } });
      assert.equal(malformed.status, 400);
      const notJson = await fetch(url, {
        headers: { "payment-signature": Buffer.from("{nope").toString("base64") },
      });
      assert.equal(notJson.status, 400);
      const v1InV2 = await fetch(url, {
        headers: { "payment-signature": Buffer.from(JSON.stringify({ x402Version: 1 })).toString("base64") },
      });
      assert.equal(v1InV2.status, 402);
      assert.equal(((await v1InV2.json()) as { error: string }).error, "invalid_x402_version");
      const huge = await fetch(url, { headers: { "payment-signature": "A".repeat(9000) } });
      assert.equal(huge.status, 400);
      assert.ok(!upstream.seen.some((r) => r.url === "/malformed"));
    });
  });

  it("does not settle when the upstream fails: the buyer gets the error and keeps the money", async () => {
    const balance = await chain.balanceOf(buyer.address);
    const res = await payingFetch()(`${offerUrl()}/fail`);
    assert.equal(res.status, 500);
    assert.equal(res.headers.get("payment-response"), null);
    assert.equal(await chain.balanceOf(buyer.address), balance);
  });

  it("streams server-sent events through, paid once, without buffering the whole response", async () => {
    const balance = await chain.balanceOf(buyer.address);
    const res = await payingFetch()(`${offerUrl()}/stream`);
    assert.equal(res.status, 200);
    assert.ok(res.headers.get("payment-response"));
    const reader = res.body!.getReader();
    // The upstream holds everything after its first event: a buffering gateway never sends it.
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      reader.read().then((chunk) => new TextDecoder().decode(chunk.value)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("no event within 20 s while the upstream held the rest: buffered")),
          20_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    assert.match(first, /token-0/);
    upstream.releaseStreams();
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    assert.match(rest, /token-3[\s\S]*\[DONE\]/);
    assert.equal(await chain.balanceOf(buyer.address), balance - PRICE_ATOMIC);
  });

  it("enforces the offer's limits before any payment work: refused requests cost nothing", async () => {
    await paidOffer("limited", chain.asset, "/services/limited", { limits: { maxInFlight: 1, rps: 3 } });
    const limitedUrl = `${publicUrl}/services/limited`;
    await new Promise((r) => setTimeout(r, 1_100)); // the bucket refills after the probe above

    const second = await signedPayment(`${limitedUrl}/stream?second`);
    const balance = await chain.balanceOf(buyer.address);
    const streaming = await payingFetch()(`${limitedUrl}/stream`);
    assert.equal(streaming.status, 200);
    // While the paid stream is in flight, a second paid request is turned away unverified.
    const refused = await fetch(`${limitedUrl}/stream?second`, {
      headers: { "payment-signature": encodePaymentSignatureHeader(second) },
    });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal(((await refused.json()) as { error: string }).error, "too_many_in_flight");
    upstream.releaseStreams();
    await streaming.text();
    assert.equal(
      await chain.balanceOf(buyer.address),
      balance - PRICE_ATOMIC,
      "only the admitted request paid",
    );
    assert.ok(!upstream.seen.some((r) => r.url === "/stream?second"), "the refused one was not proxied");

    // The stream has ended: the slot is free again, and a burst beyond 3 rps is refused.
    await new Promise((r) => setTimeout(r, 1_100));
    const burst = await Promise.all(Array.from({ length: 8 }, () => fetch(`${limitedUrl}/burst`)));
    const statuses = burst.map((r) => r.status);
    assert.ok(statuses.filter((s) => s === 402).length <= 4, JSON.stringify(statuses));
    assert.ok(statuses.filter((s) => s === 402).length >= 1, JSON.stringify(statuses));
    const limited = burst.filter((r) => r.status === 429);
    assert.ok(limited.length >= 4, JSON.stringify(statuses));
    assert.equal(((await at(limited, 0).json()) as { error: string }).error, "rate_limited");
  });

  it("limits.perPayerRps: one payer over its rate gets 429 with Retry-After (not charged), another payer is served", async () => {
    await paidOffer("per-payer", chain.asset, "/services/per-payer", { limits: { perPayerRps: 1 } });
    const url = `${publicUrl}/services/per-payer`;
    const other = privateKeyToAccount(generatePrivateKey());
    await chain.mint(other.address, 10_000_000n);
    // Signed up front, so the three requests below arrive together.
    const [a1, a2, b1] = await Promise.all([
      signedPayment(`${url}/a1`),
      signedPayment(`${url}/a2`),
      signedPayment(`${url}/b1`, undefined, other),
    ]);
    const [buyerBefore, otherBefore] = [
      await chain.balanceOf(buyer.address),
      await chain.balanceOf(other.address),
    ];
    const send = (path: string, payment: PaymentPayload) =>
      fetch(`${url}${path}`, { headers: { "payment-signature": encodePaymentSignatureHeader(payment) } });
    const [ra1, ra2, rb1] = await Promise.all([send("/a1", a1), send("/a2", a2), send("/b1", b1)]);
    // The buyer's two requests in the same second: one served, one refused; the other payer served.
    const buyerStatuses = [ra1.status, ra2.status].sort();
    assert.deepEqual(buyerStatuses, [200, 429], `buyer: ${buyerStatuses}`);
    assert.equal(rb1.status, 200, await rb1.clone().text());
    const refused = ra1.status === 429 ? ra1 : ra2;
    const refusedPath = refused === ra1 ? "/a1" : "/a2";
    assert.equal(refused.headers.get("retry-after"), "1");
    const body = (await refused.json()) as { error: string; message: string };
    assert.equal(body.error, "payer_rate_limited");
    assert.match(body.message, /per second from one payer/);
    assert.ok(!upstream.seen.some((r) => r.url === refusedPath), "the refused request was not proxied");
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC, "the buyer paid once");
    assert.equal(await chain.balanceOf(other.address), otherBefore - PRICE_ATOMIC);
    // Nothing was charged for the refused one: after Retry-After the same payment is accepted.
    await new Promise((r) => setTimeout(r, 1_100));
    const retried = await send(refusedPath, refused === ra1 ? a1 : a2);
    assert.equal(retried.status, 200, await retried.clone().text());
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - 2n * PRICE_ATOMIC);
  });

  it("routes[].price: the priced route's 402 asks, verifies and settles its own price; other routes the offer's; catalogs list it", async () => {
    await paidOffer("priced", chain.asset, "/services/priced", {
      routes: [{ path: "/premium", gate: "paid", price: { perRequest: "0.005" } }],
    });
    const url = `${publicUrl}/services/priced`;
    const asked = async (sub: string) =>
      at(
        decodePaymentRequiredHeader((await fetch(`${url}${sub}`)).headers.get("payment-required")!).accepts,
        0,
      ).amount;
    assert.equal(await asked("/premium"), "5000");
    assert.equal(await asked("/other"), PRICE_ATOMIC.toString());
    // A payment for the offer's price is not accepted on the priced route: nothing proxied.
    const cheap = await signedPayment(`${url}/other`);
    const refused = await fetch(`${url}/premium`, {
      headers: { "payment-signature": encodePaymentSignatureHeader(cheap) },
    });
    assert.equal(refused.status, 402);
    assert.equal(((await refused.json()) as { error: string }).error, "amount_mismatch");
    assert.ok(!upstream.seen.some((r) => r.url === "/premium"), "the refused payment was not proxied");
    const charged = async (sub: string) => {
      const before = await chain.balanceOf(buyer.address);
      const res = await payingFetch()(`${url}${sub}`);
      assert.equal(res.status, 200, await res.clone().text());
      return before - (await chain.balanceOf(buyer.address));
    };
    assert.equal(await charged("/premium"), 5000n, "the route's price");
    assert.equal(await charged("/other"), PRICE_ATOMIC, "the offer's price");
    const catalog = (await (await fetch(`${publicUrl}/api/services.json`)).json()) as {
      services: {
        name: string;
        priceAtomicUnits: string;
        routes: { path: string; payments?: { priceAtomicUnits: string }[] }[];
      }[];
    };
    const listed = defined(
      catalog.services.find((x) => x.name === "priced"),
      "priced in services.json",
    );
    assert.equal(listed.priceAtomicUnits, PRICE_ATOMIC.toString());
    assert.equal(listed.routes.find((r) => r.path === "/premium")?.payments?.[0]?.priceAtomicUnits, "5000");
  });

  it("payment-identifier: a retry of the same payment gets the same answer, proxied once and settled once; another payment under that id is refused", async () => {
    const url = `${offerUrl()}/idem`;
    const required = decodePaymentRequiredHeader((await fetch(url)).headers.get("payment-required")!);
    assert.deepEqual(
      (required.extensions?.[PAYMENT_IDENTIFIER] as { info: unknown } | undefined)?.info,
      { required: false },
      "the 402 declares payment-identifier",
    );
    const id = generatePaymentId();
    const sign = () => {
      const withId = structuredClone(required);
      appendPaymentIdentifierToExtensions(withId.extensions ?? {}, id);
      return x402ClientFor().createPaymentPayload(withId);
    };
    const header = encodePaymentSignatureHeader(await sign());
    const proxied = () => upstream.seen.filter((r) => r.url === "/idem").length;
    const [buyerBefore, sellerBefore] = [await chain.balanceOf(buyer.address), await chain.balanceOf(payTo)];
    const first = await fetch(url, { headers: { "payment-signature": header } });
    assert.equal(first.status, 200, await first.clone().text());
    const firstBody = await first.text();
    // The buyer lost that answer and sends the same payment again: twice, one of them concurrently.
    const [again, andAgain] = await Promise.all([
      fetch(url, { headers: { "payment-signature": header } }),
      fetch(url, { headers: { "payment-signature": header } }),
    ]);
    for (const res of [again, andAgain]) {
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await res.text(), firstBody, "the same answer");
      assert.equal(
        res.headers.get("payment-response"),
        first.headers.get("payment-response"),
        "the same receipt",
      );
    }
    assert.equal(proxied(), 1, "the upstream saw the request once");
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC, "settled once");
    assert.equal(await chain.balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
    // A new payment under the same identifier: refused with a reason, nothing proxied or settled.
    const conflicting = await fetch(url, {
      headers: { "payment-signature": encodePaymentSignatureHeader(await sign()) },
    });
    assert.equal(conflicting.status, 409);
    const body = (await conflicting.json()) as { error: string; message: string };
    assert.equal(body.error, "payment_identifier_conflict");
    assert.match(body.message, /use a new identifier for a new payment/);
    assert.equal(proxied(), 1);
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC);
    // Without an identifier, the same payment twice is still a replay.
    const plain = encodePaymentSignatureHeader(await signedPayment(`${offerUrl()}/plain`));
    assert.equal(
      (await fetch(`${offerUrl()}/plain`, { headers: { "payment-signature": plain } })).status,
      200,
    );
    const replay = await fetch(`${offerUrl()}/plain`, { headers: { "payment-signature": plain } });
    assert.equal(((await replay.json()) as { error: string }).error, "replayed");
  });

  it("payment-identifier covers the body: the same payment and id with another body is refused (409), nothing proxied; a body over 1 MiB is refused before any payment work", async () => {
    const url = `${offerUrl()}/echo`;
    const required = decodePaymentRequiredHeader(
      (await fetch(url, { method: "POST" })).headers.get("payment-required")!,
    );
    const identifiedPayment = async () => {
      const withId = structuredClone(required);
      appendPaymentIdentifierToExtensions(withId.extensions ?? {}, generatePaymentId());
      return encodePaymentSignatureHeader(await x402ClientFor().createPaymentPayload(withId));
    };
    const header = await identifiedPayment();
    const post = (body: string, payment = header) =>
      fetch(url, {
        method: "POST",
        body,
        headers: { "payment-signature": payment, "content-type": "application/json" },
      });
    const proxied = () => upstream.seen.filter((r) => r.url === "/echo").length;
    const buyerBefore = await chain.balanceOf(buyer.address);
    const first = await post('{"prompt":"first"}');
    const firstBody = await first.text();
    assert.equal(first.status, 200, firstBody);
    assert.deepEqual(JSON.parse(firstBody), { received: '{"prompt":"first"}' }, "the body went upstream");
    const again = await post('{"prompt":"first"}');
    assert.equal(again.status, 200);
    assert.equal(await again.text(), firstBody, "the same body: the first answer again");
    const other = await post('{"prompt":"second"}');
    const refused = (await other.json()) as { error: string; message: string };
    assert.equal(other.status, 409);
    assert.equal(refused.error, "payment_identifier_conflict");
    assert.equal(proxied(), 1, "the upstream saw one request");
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC, "charged once");

    const tooLarge = await post("x".repeat((1 << 20) + 1), await identifiedPayment());
    const tooLargeBody = (await tooLarge.json()) as { error: string; message: string };
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLargeBody.error, "request_too_large");
    assert.match(tooLargeBody.message, /without an identifier/);
    assert.equal(proxied(), 1, "nothing proxied");
    assert.equal(await chain.balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC, "nothing charged");
  });

  it("accepts v1 buyers (X-PAYMENT, legacy network name) and answers with X-PAYMENT-RESPONSE", async () => {
    const res402 = await fetch(`${offerUrl()}/v1`);
    const v1Required = (await res402.json()) as PaymentRequired;
    const payment = await x402ClientFor().createPaymentPayload(v1Required);
    assert.equal(payment.x402Version, 1);
    const balance = await chain.balanceOf(buyer.address);
    const res = await fetch(`${offerUrl()}/v1`, {
      headers: { "x-payment": Buffer.from(JSON.stringify(payment)).toString("base64") },
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(decodePaymentResponseHeader(res.headers.get("x-payment-response")!).success, true);
    assert.equal(await chain.balanceOf(buyer.address), balance - PRICE_ATOMIC);
  });

  it("exposes payment metrics on the internal port only", async () => {
    // A settled payment and its replay of its own: the counters below exist whatever ran before.
    const header = encodePaymentSignatureHeader(await signedPayment(`${offerUrl()}/metered`));
    for (const status of [200, 402]) {
      const res = await fetch(`${offerUrl()}/metered`, { headers: { "payment-signature": header } });
      assert.equal(res.status, status, await res.text());
    }
    const text = await (await fetch(`${internalUrl}/metrics`)).text();
    assert.match(text, /x402_payments_settled_total\{offer="paid",network="eip155:84532"\} [1-9]/);
    assert.doesNotMatch(text, /network="base-sepolia"/, "v1 payments are counted under their CAIP-2 network");
    assert.match(text, /x402_payments_failed_total\{offer="paid",reason="replayed"\} [1-9]/);
    assert.match(text, /x402_request_duration_seconds_bucket/);
    assert.equal((await fetch(`${publicUrl}/metrics`)).status, 404);
  });

  describe("the Permit2 path: a plain ERC-20, Permit2 and x402's exact Permit2 proxy", () => {
    const token = () => chain.permit2Token;
    const permit2Url = () => `${publicUrl}/services/permit2`;
    // Holds tokens but never approved Permit2.
    const unapproved = privateKeyToAccount(ANVIL_KEYS[1]);
    const permit2Payment = (path: string, account = buyer) =>
      signedPayment(`${permit2Url()}${path}`, undefined, account);
    const served = (path: string) => upstream.seen.filter((r) => r.url === path).length;

    before(async () => {
      await token().mint(buyer.address, 10_000_000n);
      await token().mint(unapproved.address, 10_000_000n);
      await token().approvePermit2(buyerKey);
      await ensurePermit2Offer();
    });

    it("asks v2 buyers for a Permit2 transfer and offers v1 buyers nothing (v1 has no Permit2)", async () => {
      const res = await fetch(`${permit2Url()}/quote`);
      assert.equal(res.status, 402);
      const v2 = decodePaymentRequiredHeader(res.headers.get("payment-required")!);
      assert.equal(at(v2.accepts, 0).asset, token().asset.address);
      assert.equal(at(v2.accepts, 0).extra?.assetTransferMethod, "permit2");
      assert.deepEqual(((await res.json()) as { accepts: unknown[] }).accepts, []);
    });

    it("a buyer pays with @x402/fetch: settled on chain through the proxy, exactly the price", async () => {
      const [buyerBefore, sellerBefore] = [
        await token().balanceOf(buyer.address),
        await token().balanceOf(payTo),
      ];
      const usdcBefore = await chain.balanceOf(buyer.address);
      const res = await payingFetch(buyer)(`${permit2Url()}/p2-hello`);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { ok: true, url: "/p2-hello" });
      const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
      assert.equal(receipt.success, true);
      const tx = await chain.client.getTransactionReceipt({ hash: receipt.transaction as `0x${string}` });
      assert.equal(
        tx.to?.toLowerCase(),
        X402_EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase(),
        "settled by the proxy",
      );
      assert.equal(await token().balanceOf(buyer.address), buyerBefore - PRICE_ATOMIC);
      assert.equal(await token().balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
      assert.equal(await chain.balanceOf(buyer.address), usdcBefore, "the EIP-3009 token is untouched");
      assert.equal(served("/p2-hello"), 1);
    });

    it("a payer without an allowance approves by EIP-2612 signature: no transaction of its own (gas sponsored)", async () => {
      const sponsored = privateKeyToAccount(generatePrivateKey()); // holds tokens, no ETH at all
      await token().mint(sponsored.address, 1_000_000n);
      const required = decodePaymentRequiredHeader(
        (await fetch(`${permit2Url()}/p2-sponsored`)).headers.get("payment-required")!,
      );
      assert.ok(required.extensions?.eip2612GasSponsoring, "the 402 declares eip2612GasSponsoring");
      // The RPC lets the client see it has no allowance and read its permit nonce.
      const client = x402ClientFor(sponsored, chain.anvil.rpcUrl);
      const sellerBefore = await token().balanceOf(payTo);
      const res = await wrapFetchWithPayment(fetch, client)(`${permit2Url()}/p2-sponsored`);
      assert.equal(res.status, 200, await res.clone().text());
      const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
      const tx = await chain.client.getTransaction({ hash: receipt.transaction as `0x${string}` });
      assert.equal(tx.to?.toLowerCase(), X402_EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase());
      assert.equal(
        tx.from.toLowerCase(),
        privateKeyToAccount(ANVIL_KEYS[0]).address.toLowerCase(),
        "the facilitator paid the gas",
      );
      assert.equal(
        await chain.client.getTransactionCount({ address: sponsored.address }),
        0,
        "the payer sent nothing",
      );
      assert.equal(await token().balanceOf(sponsored.address), 1_000_000n - PRICE_ATOMIC);
      assert.equal(await token().balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
      assert.equal(
        await token().permit2Allowance(sponsored.address),
        0n,
        "the permit covered exactly this payment",
      );
    });

    it("refuses a payer that never approved Permit2, with the reason, before proxying", async () => {
      const balance = await token().balanceOf(unapproved.address);
      const payment = await permit2Payment("/p2-unapproved", unapproved);
      const res = await fetch(`${permit2Url()}/p2-unapproved`, {
        headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
      });
      assert.equal(res.status, 412, "Precondition Failed, as the exact-EVM scheme specifies");
      const required = decodePaymentRequiredHeader(
        defined(res.headers.get("payment-required") ?? undefined, "PAYMENT-REQUIRED"),
      );
      assert.equal(required.error, "permit2_allowance_required", "the requirements travel with it");
      assert.ok(required.accepts.length > 0);
      assert.equal(((await res.json()) as { error: string }).error, "permit2_allowance_required");
      assert.equal(await token().balanceOf(unapproved.address), balance);
      assert.equal(served("/p2-unapproved"), 0);
    });

    it("refuses Permit2 payments on a chain without x402's Permit2 proxy instead of settling nothing", async () => {
      // A transaction to an address without code succeeds and moves nothing: without a check the
      // seller would serve for free while the receipt says "success".
      const code = await chain.client.getCode({ address: X402_EXACT_PERMIT2_PROXY_ADDRESS });
      await chain.client.request({
        method: "anvil_setCode" as never,
        params: [X402_EXACT_PERMIT2_PROXY_ADDRESS, "0x"] as never,
      });
      try {
        const [buyerBefore, sellerBefore] = [
          await token().balanceOf(buyer.address),
          await token().balanceOf(payTo),
        ];
        const res = await payingFetch(buyer)(`${permit2Url()}/p2-no-proxy`);
        assert.equal(res.status, 402, await res.clone().text());
        assert.match(((await res.json()) as { error: string }).error, /permit2_proxy_not_deployed/);
        assert.equal(served("/p2-no-proxy"), 0);
        assert.equal(await token().balanceOf(buyer.address), buyerBefore);
        assert.equal(await token().balanceOf(payTo), sellerBefore);
      } finally {
        await chain.client.request({
          method: "anvil_setCode" as never,
          params: [X402_EXACT_PERMIT2_PROXY_ADDRESS, code] as never,
        });
      }
    });

    it("a redirected witness or a replayed Permit2 nonce moves nothing", async () => {
      const redirected = await permit2Payment("/p2-redirect");
      const auth = redirected.payload.permit2Authorization as { witness: { to: string } };
      auth.witness.to = "0x000000000000000000000000000000000000dEaD";
      redirected.accepted.payTo = auth.witness.to;
      const balance = await token().balanceOf(buyer.address);
      const res = await fetch(`${permit2Url()}/p2-redirect`, {
        headers: { "payment-signature": encodePaymentSignatureHeader(redirected) },
      });
      assert.equal(res.status, 402);
      assert.match(((await res.json()) as { error: string }).error, /recipient_mismatch/);
      assert.equal(served("/p2-redirect"), 0);

      const payment = await permit2Payment("/p2-race");
      const header = encodePaymentSignatureHeader(payment);
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`${permit2Url()}/p2-race`, { headers: { "payment-signature": header } }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, ...Array(9).fill(402)], JSON.stringify(statuses));
      assert.equal(await token().balanceOf(buyer.address), balance - PRICE_ATOMIC, "one nonce, one transfer");
      assert.equal(served("/p2-race"), 1);
      // The chain itself refuses the spent nonce, whatever a gateway remembers: the facilitator's
      // simulation of the proxy's settle now fails.
      const requirement = decodePaymentRequiredHeader(
        (await fetch(`${permit2Url()}/p2-race`)).headers.get("payment-required")!,
      ).accepts[0];
      const verdict = (await (
        await fetch(`http://127.0.0.1:${facilitatorPort}/verify`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ x402Version: 2, paymentPayload: payment, paymentRequirements: requirement }),
        })
      ).json()) as { isValid: boolean; invalidReason?: string };
      assert.deepEqual(verdict.isValid, false);
      assert.match(verdict.invalidReason ?? "", /permit2_simulation_failed/);
    });
  });

  describe("drain: an offer's end (endsAt) and its removal (issue 16 item 1)", () => {
    /** A fresh payee per offer: its balance counts exactly this offer's settlements. */
    const drainOffer = async (name: string, extra: Record<string, unknown> = {}) => {
      const offerPayTo = privateKeyToAccount(generatePrivateKey()).address as Address;
      await createPaidOffer(cp, ns, name, {
        upstreamPort: upstream.port,
        network: chain.network,
        payTo: offerPayTo,
        asset: chain.asset,
        extra,
        logs: [controller, gateway],
        routedAt: [publicUrl],
      });
      return { url: `${publicUrl}/services/${name}`, payTo: offerPayTo };
    };
    const servicesEntry = async (name: string) => {
      const doc = (await (await fetch(`${publicUrl}/api/services.json`)).json()) as {
        services: { name: string; endsAt?: string; ended?: boolean }[];
      };
      return doc.services.find((s) => s.name === name);
    };
    const sleepUntil = async (ms: number) => {
      while (Date.now() < ms) await new Promise((r) => setTimeout(r, Math.min(200, ms - Date.now())));
    };
    const paidWith = (url: string, payment: PaymentPayload) =>
      fetch(url, { headers: { "payment-signature": encodePaymentSignatureHeader(payment) } });

    it("a request paid before endsAt finishes and is settled; a payment after it is refused with offer_ended (nothing proxied or settled); drainSeconds later the route is 404", async () => {
      const { url, payTo: seller } = await drainOffer("ending");
      // In flight across the end: verified and proxied now, answered (and settled) after the end.
      const inFlight = payingFetch()(`${url}/hold-1`);
      await waitFor(
        "the paid request reached the upstream",
        async () => upstream.seen.some((r) => r.url === "/hold-1"),
        { timeoutMs: 30_000 },
      );
      // A buyer that read the terms before the end and pays after it.
      const late = await signedPayment(`${url}/late`);
      const endsAt = Date.now() + 4_000;
      const drainSeconds = 6;
      await mergePatch(cp, ns, "serviceoffers", "ending", {
        spec: { endsAt: new Date(endsAt).toISOString(), drainSeconds },
      });
      await waitFor(
        "services.json shows the end",
        async () => (await servicesEntry("ending"))?.endsAt === new Date(endsAt).toISOString(),
        { timeoutMs: 15_000 },
      );
      assert.equal(await chain.balanceOf(seller), 0n, "nothing settled before the upstream answered");

      await sleepUntil(endsAt + 200);
      const buyerBefore = await chain.balanceOf(buyer.address);
      const refused = await paidWith(`${url}/late`, late);
      assert.equal(refused.status, 410);
      const body = (await refused.json()) as { error: string; message: string };
      assert.equal(body.error, "offer_ended");
      assert.match(body.message, /stopped taking payments at .*nothing was charged/);
      assert.equal(refused.headers.get("payment-required"), null, "no terms inviting a payment");
      assert.equal((await fetch(`${url}/unpaid`)).status, 410, "no 402 for an unpaid request either");
      assert.ok(!upstream.seen.some((r) => r.url === "/late" || r.url === "/unpaid"), "nothing proxied");
      assert.equal((await servicesEntry("ending"))?.ended, true, "the catalog marks it ended");

      upstream.releaseStreams();
      const done = await inFlight;
      assert.equal(done.status, 200, await done.clone().text());
      assert.deepEqual(await done.json(), { held: "/hold-1" });
      assert.equal(decodePaymentResponseHeader(done.headers.get("payment-response") ?? "").success, true);
      assert.equal(await chain.balanceOf(seller), PRICE_ATOMIC, "the in-flight request settled, once");
      assert.equal(
        await chain.balanceOf(buyer.address),
        buyerBefore - PRICE_ATOMIC,
        "the late one cost nothing",
      );

      await waitFor(
        "the route is gone after the drain",
        async () => (await fetch(`${url}/x`)).status === 404,
        {
          timeoutMs: drainSeconds * 1000 + 15_000,
        },
      );
      assert.ok(Date.now() >= endsAt + drainSeconds * 1000, "not gone before endsAt + drainSeconds");
      assert.equal(await servicesEntry("ending"), undefined, "and it left the catalog");
    });

    it("deleting an offer drains it: the finalizer keeps the object and the route (offer_ended) for drainSeconds, then both are gone", async () => {
      const { url, payTo: seller } = await drainOffer("removed", { drainSeconds: 5 });
      await waitFor(
        "the controller put its drain finalizer on the offer",
        async () => {
          const obj = await getObject(cp, ns, "serviceoffers", "removed");
          return (
            ((obj?.metadata ?? {}) as { finalizers?: string[] }).finalizers?.includes(DRAIN_FINALIZER) ===
            true
          );
        },
        { timeoutMs: 15_000 },
      );
      const inFlight = payingFetch()(`${url}/hold-2`);
      await waitFor(
        "the paid request reached the upstream",
        async () => upstream.seen.some((r) => r.url === "/hold-2"),
        { timeoutMs: 30_000 },
      );
      const late = await signedPayment(`${url}/late2`);
      await deleteObject(cp, ns, "serviceoffers", "removed");

      const draining = defined(await getObject(cp, ns, "serviceoffers", "removed"), "the draining offer");
      // The API server's deletion time (whole seconds) is when the offer ended.
      const deletedAt = Date.parse(
        defined((draining.metadata as { deletionTimestamp?: string }).deletionTimestamp, "deletionTimestamp"),
      );
      await waitFor(
        "the gateway refuses payments for the deleted offer",
        async () => (await fetch(`${url}/probe`)).status === 410,
        { timeoutMs: 10_000 },
      );
      const refused = await paidWith(`${url}/late2`, late);
      assert.equal(refused.status, 410);
      assert.equal(((await refused.json()) as { error: string }).error, "offer_ended");

      upstream.releaseStreams();
      const done = await inFlight;
      assert.equal(done.status, 200, await done.clone().text());
      assert.equal(
        await chain.balanceOf(seller),
        PRICE_ATOMIC,
        "the in-flight request settled; the late one did not",
      );

      await waitFor(
        "the controller released the finalizer and the object is gone",
        async () => (await getObject(cp, ns, "serviceoffers", "removed")) === undefined,
        { timeoutMs: 30_000 },
      );
      assert.ok(Date.now() - deletedAt >= 5_000, "held for drainSeconds");
      assert.equal((await fetch(`${url}/x`)).status, 404);
      assert.ok(!upstream.seen.some((r) => r.url === "/late2" || r.url === "/probe"), "nothing proxied");
    });
  });

  describe("sign-in routes: gate auth with x402 sign-in-with-x (issue 16 item 3)", () => {
    const member = privateKeyToAccount(generatePrivateKey());
    let signInOffer: Promise<void> | undefined;
    const membersUrl = () => `${publicUrl}/services/club/members`;
    const ensureOffer = () => {
      signInOffer ??= paidOffer("club", chain.asset, "/services/club", {
        routes: [{ path: "/members/*", gate: "auth" }],
      });
      return signInOffer;
    };
    /** The 401's challenge, signed by `member` with viem (optionally changed before signing). */
    const signIn = async (url: string, change: Record<string, string> = {}) => {
      const res = await fetch(url);
      assert.equal(res.status, 401);
      const required = decodePaymentRequiredHeader(res.headers.get("payment-required") ?? "");
      const challenge = required.extensions?.[SIGN_IN_WITH_X] as SIWxExtension;
      const chainInfo = at(challenge.supportedChains, 0);
      const info = { ...challenge.info, chainId: chainInfo.chainId, type: chainInfo.type, ...change };
      return encodeSIWxHeader(await createSIWxPayload(info, member, url));
    };

    it("unauthenticated → 401 with the challenge; a wallet's signed credential → served with its address, nothing paid", async () => {
      await ensureOffer();
      const url = `${membersUrl()}/profile`;
      const first = await fetch(url);
      assert.equal(first.status, 401);
      const body = (await first.json()) as { error: string; accepts: unknown[] };
      assert.equal(body.error, "sign_in_required");
      assert.deepEqual(body.accepts, []);
      const required = decodePaymentRequiredHeader(
        defined(first.headers.get("payment-required") ?? undefined, "challenge"),
      );
      const challenge = required.extensions?.[SIGN_IN_WITH_X] as SIWxExtension;
      assert.equal(challenge.info.uri, url);
      assert.deepEqual(challenge.supportedChains, [{ chainId: chain.network, type: "eip191" }]);

      const balance = await chain.balanceOf(buyer.address);
      const served = await fetch(url, { headers: { [SIGN_IN_WITH_X]: await signIn(url) } });
      assert.equal(served.status, 200, await served.clone().text());
      assert.deepEqual(await served.json(), { ok: true, url: "/members/profile" });
      const proxied = defined(
        upstream.seen.findLast((r) => r.url === "/members/profile"),
        "the proxied request",
      );
      assert.equal(
        String(proxied.headers["x-signed-in-address"]).toLowerCase(),
        member.address.toLowerCase(),
      );
      assert.equal(proxied.headers[SIGN_IN_WITH_X], undefined);
      assert.equal(await chain.balanceOf(buyer.address), balance, "no payment anywhere");
    });

    it("a replayed or expired credential is refused with its reason, nothing proxied", async () => {
      await ensureOffer();
      const url = `${membersUrl()}/feed`;
      const header = await signIn(url);
      assert.equal((await fetch(url, { headers: { [SIGN_IN_WITH_X]: header } })).status, 200);
      const replay = await fetch(url, { headers: { [SIGN_IN_WITH_X]: header } });
      assert.equal(replay.status, 401);
      assert.equal(((await replay.json()) as { error: string }).error, "sign_in_replayed");
      const expired = await signIn(url, { expirationTime: new Date(Date.now() - 1000).toISOString() });
      const late = await fetch(url, { headers: { [SIGN_IN_WITH_X]: expired } });
      assert.equal(late.status, 401);
      assert.equal(((await late.json()) as { error: string }).error, "invalid_siwx_expired");
      assert.equal(
        upstream.seen.filter((r) => r.url === "/members/feed").length,
        1,
        "only the first was proxied",
      );
      const services = (await (await fetch(`${publicUrl}/api/services.json`)).json()) as {
        services: { name: string; routes: { path: string; gate: string }[] }[];
      };
      assert.deepEqual(services.services.find((s) => s.name === "club")?.routes, [
        { path: "/members/*", gate: "auth" },
      ]);
    });
  });

  it("fails closed with 503 when the facilitator is down: nothing proxied", async () => {
    const payment = await signedPayment(`${offerUrl()}/down`);
    await facilitator.stop();
    try {
      const res = await fetch(`${offerUrl()}/down`, {
        headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
      });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "facilitator_unavailable");
      assert.ok(!upstream.seen.some((r) => r.url === "/down"));
    } finally {
      await startFacilitator();
    }
  });

  it("a facilitator that requires an access token the gateway does not present: 503 facilitator_unavailable, nothing proxied or settled", async () => {
    const payment = await signedPayment(`${offerUrl()}/token`);
    await facilitator.stop();
    await startFacilitator({ FACILITATOR_TOKEN: "a-token-this-gateway-was-not-given" });
    try {
      const before = await chain.balanceOf(buyer.address);
      const res = await fetch(`${offerUrl()}/token`, {
        headers: { "payment-signature": encodePaymentSignatureHeader(payment) },
      });
      assert.equal(res.status, 503);
      assert.equal(((await res.json()) as { error: string }).error, "facilitator_unavailable");
      assert.ok(!upstream.seen.some((r) => r.url === "/token"), "nothing proxied");
      assert.equal(await chain.balanceOf(buyer.address), before, "nothing settled");
      assert.match(
        await fs.promises.readFile(facilitator.logFile, "utf8"),
        /refused a verify without the access token/,
        "the facilitator says why",
      );
    } finally {
      await facilitator.stop();
      await startFacilitator();
    }
  });

  describe("the buyer proxy (behind LiteLLM's paid/* route)", () => {
    const buyerAccount = privateKeyToAccount(ANVIL_KEYS[3]);
    let buyerProc: ManagedProcess;
    let buyerUrl: string;
    let ledgerPath: string;
    let hostileSellers: Record<"settlesEip3009" | "settlesPermit2" | "neverSettles", HostileSeller>;

    const startBuyerProcess = async () => {
      const port = await freePort();
      buyerUrl = `http://127.0.0.1:${port}`;
      buyerProc = startRuntime(
        "buyer",
        "buyer",
        [
          ...["--kubeconfig", cp.kubeconfigPath, "--namespace", ns, "--port", String(port)],
          ...["--host", "127.0.0.1", "--resolve-interval-ms", "500"],
        ],
        logDir,
        {
          SIGNER_KEY: ANVIL_KEYS[3],
          LEDGER_PATH: ledgerPath,
        },
      );
      await waitForHttp("the buyer", `${buyerUrl}/healthz`, buyerProc);
    };
    const chat = (model: string) =>
      fetch(`${buyerUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
      });

    before(async () => {
      ledgerPath = path.join(logDir, "..", "buyer", "ledger.jsonl");
      await chain.mint(buyerAccount.address, 10_000_000n);
      const purchase = (name: string, model: string, maxPrice: string) =>
        createObject(cp, ns, "purchaserequests", "PurchaseRequest", name, {
          endpoint: offerUrl(),
          model,
          payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice },
          budget: { maxPerRequest: "0.001", maxTotal: "0.002" },
        });
      await purchase("echo", "echo-model", "0.001");
      await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "pending-echo", {
        endpoint: offerUrl(),
        model: "pending-model",
        payment: {
          network: chain.network,
          asset: chain.asset.address,
          decimals: 6,
          maxPrice: "0.001",
          rpcUrl: chain.anvil.rpcUrl,
        },
        budget: { maxPerRequest: "0.001", maxTotal: "0.001" },
      });
      await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "one-call", {
        endpoint: offerUrl(),
        model: "one-call-model",
        payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice: "0.001" },
        budget: { maxPerRequest: "0.001", maxTotal: "0.001" },
      });
      await purchase("too-cheap", "cheap-model", "0.0005");
      // The Permit2 seller: the buyer has no allowance and an RPC to sign EIP-2612 permits.
      await ensurePermit2Offer();
      await chain.permit2Token.mint(buyerAccount.address, 10_000_000n);
      await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "permit2-echo", {
        endpoint: `${publicUrl}/services/permit2`,
        model: "permit2-model",
        payment: {
          network: chain.network,
          asset: chain.permit2Token.asset.address,
          decimals: 6,
          maxPrice: "0.001",
          rpcUrl: chain.anvil.rpcUrl,
        },
        budget: { maxPerRequest: "0.001" },
      });
      // Dishonest sellers: both leave out the receipt; one settles anyway, one never does.
      const hostile = (settle: boolean, asset: Parameters<typeof startHostileSeller>[0]["asset"]) =>
        startHostileSeller({
          facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
          network: chain.network,
          payTo,
          asset,
          amount: PRICE_ATOMIC.toString(),
          maxTimeoutSeconds: settle ? 300 : 5,
          settle,
        });
      hostileSellers = {
        settlesEip3009: await hostile(true, chain.asset),
        settlesPermit2: await hostile(true, chain.permit2Token.asset),
        neverSettles: await hostile(false, chain.permit2Token.asset),
      };
      const hostilePurchase = (name: string, endpoint: string, asset: string, maxTotal: string) =>
        createObject(cp, ns, "purchaserequests", "PurchaseRequest", name, {
          endpoint,
          model: `${name}-model`,
          payment: {
            network: chain.network,
            asset,
            decimals: 6,
            maxPrice: "0.001",
            rpcUrl: chain.anvil.rpcUrl,
          },
          budget: { maxPerRequest: "0.001", maxTotal },
        });
      await hostilePurchase("hostile-3009", hostileSellers.settlesEip3009.url, chain.asset.address, "0.002");
      await hostilePurchase(
        "hostile-permit2",
        hostileSellers.settlesPermit2.url,
        chain.permit2Token.asset.address,
        "0.002",
      );
      await hostilePurchase(
        "hostile-unsettled",
        hostileSellers.neverSettles.url,
        chain.permit2Token.asset.address,
        "0.001",
      );
      await startBuyerProcess();
    });

    after(async () => {
      await buyerProc?.stop();
      await Promise.all(Object.values(hostileSellers ?? {}).map((s) => s.close()));
    });

    const spendStatus = async (name: string) =>
      (await getObject(cp, ns, "purchaserequests", name))?.status as
        | { spentTotal?: string; requests?: number }
        | undefined;

    for (const [purchase, token] of [
      ["hostile-3009", () => chain.asset.address],
      ["hostile-permit2", () => chain.permit2Token.asset.address],
    ] as const) {
      it(`a seller that settles but omits the receipt still counts against the budget (${purchase})`, async () => {
        const seller =
          purchase === "hostile-3009" ? hostileSellers.settlesEip3009 : hostileSellers.settlesPermit2;
        const balance = () =>
          token() === chain.asset.address
            ? chain.balanceOf(buyerAccount.address)
            : chain.permit2Token.balanceOf(buyerAccount.address);
        const before = await balance();
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++) statuses.push((await chat(`paid/${purchase}-model`)).status);
        assert.deepEqual(statuses, [200, 200, 402, 402], "maxTotal allows two payments");
        assert.equal(seller.settled.length, 2);
        assert.equal(await balance(), before - 2n * PRICE_ATOMIC, "the budget held on chain");
        // The chain, not the seller, says both were used: they become settled payments.
        await waitFor(
          "the PurchaseRequest to show both payments",
          async () => {
            const status = await spendStatus(purchase);
            return status?.spentTotal === "0.002" && status.requests === 2;
          },
          { timeoutMs: 15_000 },
        );
      });
    }

    it("a settlement not mined in time is settlement_pending (never 'nothing was charged'), counted as spent by the buyer, and followed until mined", async () => {
      const automine = (on: boolean) =>
        chain.client.request({ method: "evm_setAutomine" as never, params: [on] as never });
      const metric = async (line: string) =>
        (await (await fetch(`${internalUrl}/metrics`)).text()).split("\n").includes(line);
      const before = await chain.balanceOf(buyerAccount.address);
      const sellerBefore = await chain.balanceOf(payTo);
      await automine(false);
      try {
        const res = await chat("paid/pending-model");
        assert.equal(res.status, 402, "x402's status for a settlement that did not complete");
        const body = (await res.json()) as { error: string; message: string };
        assert.equal(body.error, "settlement_pending");
        assert.doesNotMatch(body.message, /nothing was charged/);
        assert.match(body.message, /may still be charged/);
        const receipt = decodePaymentResponseHeader(
          defined(res.headers.get("payment-response") ?? undefined, "PAYMENT-RESPONSE"),
        );
        assert.equal(receipt.success, false);
        assert.equal(receipt.errorReason, "settlement_pending");
        assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/, "the pending transaction is named");
        assert.equal(await chain.balanceOf(buyerAccount.address), before, "not mined yet");
        // The buyer's budget (maxTotal: one payment) counts it as spent while it is pending.
        const again = await chat("paid/pending-model");
        assert.equal(again.status, 402);
        assert.equal(((await again.json()) as { error: { type: string } }).error.type, "over_max_total");
      } finally {
        await automine(true); // anvil mines what is pending when automine comes back
      }
      await chain.client.request({ method: "evm_mine" as never, params: [] as never });
      await waitFor(
        "the gateway to follow the pending settlement to its end",
        () => metric('x402_pending_settlements_resolved_total{offer="paid",outcome="settled"} 1'),
        { timeoutMs: 60_000 },
      );
      assert.equal(await chain.balanceOf(buyerAccount.address), before - PRICE_ATOMIC, "charged once");
      assert.equal(await chain.balanceOf(payTo), sellerBefore + PRICE_ATOMIC);
      assert.ok(await metric('x402_pending_settlements{offer="paid"} 0'), "nothing left pending");
      await waitFor(
        "the buyer to record the payment as settled",
        async () => {
          const status = await spendStatus("pending-echo");
          return status?.spentTotal === "0.001" && status.requests === 1;
        },
        { timeoutMs: 15_000 },
      );
      const facilitatorLog = fs.readFileSync(facilitator.logFile, "utf8");
      assert.match(facilitatorLog, /facilitator: settlement pending; following its transaction/);
      assert.match(facilitatorLog, /facilitator: pending settlement final.*"outcome":"settled"/);
      assert.match(
        fs.readFileSync(gateway.logFile, "utf8"),
        /x402: pending settlement final.*"outcome":"settled"/,
      );
    });

    it("a payment the seller never settled is released only once the chain shows it expired unused", async () => {
      const before = await chain.permit2Token.balanceOf(buyerAccount.address);
      const first = await chat("paid/hostile-unsettled-model");
      assert.equal(first.status, 200);
      const second = await chat("paid/hostile-unsettled-model");
      assert.equal(second.status, 402, "no receipt is not proof of no charge: still counted as spent");
      assert.equal(((await second.json()) as { error: { type: string } }).error.type, "over_max_total");
      // Past the authorization's deadline (5 s), a new block proves it can never be used.
      await new Promise((r) => setTimeout(r, 6_500));
      await chain.client.request({ method: "evm_mine" as never, params: [] as never });
      await waitFor(
        "the expired payment to be released",
        async () => (await spendStatus("hostile-unsettled"))?.spentTotal === "0",
        { timeoutMs: 15_000 },
      );
      assert.equal((await chat("paid/hostile-unsettled-model")).status, 200, "the budget is free again");
      assert.equal(await chain.permit2Token.balanceOf(buyerAccount.address), before, "nothing was ever paid");
    });

    it("pays the seller for paid/<model>, with its own User-Agent, within the budget, and records the spend", async () => {
      const before = await chain.balanceOf(buyerAccount.address);
      const res = await chat("paid/echo-model");
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { ok: true, url: "/v1/chat/completions" });
      assert.equal(await chain.balanceOf(buyerAccount.address), before - PRICE_ATOMIC);
      const seen = upstream.seen.filter((r) => r.url === "/v1/chat/completions").at(-1)!;
      assert.equal(seen.headers["user-agent"], "obol-stack-buyer/0.1");
      assert.equal((await chat("echo-model")).status, 200, "the bare model name works too");
      await waitForSpend(cp, ns, "echo", "0.002", 2);
    });

    it("refuses what the budget does not allow, and remembers the spend across a restart", async () => {
      assert.equal((await chat("paid/one-call-model")).status, 200, "the budget allows one call");
      const before = await chain.balanceOf(buyerAccount.address);
      const over = await chat("paid/one-call-model");
      assert.equal(over.status, 402);
      assert.equal(((await over.json()) as { error: { type: string } }).error.type, "over_max_total");
      const cheap = await chat("paid/cheap-model");
      assert.equal(((await cheap.json()) as { error: { type: string } }).error.type, "over_max_price");

      await buyerProc.stop();
      await startBuyerProcess();
      const afterRestart = await chat("paid/one-call-model");
      assert.equal(afterRestart.status, 402, "the durable ledger still counts what was spent");
      assert.equal(await chain.balanceOf(buyerAccount.address), before, "nothing more was paid");
    });

    it("pays a Permit2 seller of an EIP-2612 token by signature: no approve transaction", async () => {
      const [tokensBefore, nonceBefore] = [
        await chain.permit2Token.balanceOf(buyerAccount.address),
        await chain.client.getTransactionCount({ address: buyerAccount.address }),
      ];
      assert.equal(await chain.permit2Token.permit2Allowance(buyerAccount.address), 0n);
      const res = await chat("paid/permit2-model");
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(await chain.permit2Token.balanceOf(buyerAccount.address), tokensBefore - PRICE_ATOMIC);
      assert.equal(await chain.client.getTransactionCount({ address: buyerAccount.address }), nonceBefore);
    });

    it("answers 404 for a model nobody sells", async () => {
      assert.equal((await chat("paid/unknown")).status, 404);
    });
  });
});
