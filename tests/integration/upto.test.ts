/**
 * Metered inference with x402's `upto` scheme, every part a real process on loopback: anvil with
 * Permit2 and x402's upto Permit2 proxy at their canonical addresses, the self-run facilitator,
 * the controller, the gateway and an OpenAI-style upstream that reports usage. Buyers sign with
 * @x402/evm's upto client; the chain shows what was settled.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import type { SettleResponse } from "@x402/core/types";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import type { Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { uptoTokenCap } from "../../api/pricing";
import { ANVIL_KEYS } from "../harness/anvil";
import { defined } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import {
  createNamespace,
  createObject,
  installCrds,
  startRuntime,
  startSellerRuntime,
  waitForCondition,
  waitForHttp,
  waitForSpend,
} from "./runtime/helpers";

/** 10 atomic units per token (10 per million tokens, 6 decimals). */
const PER_TOKEN = 10n;
const HOSTILE_TOKENS = 50_000_000;

/**
 * An OpenAI-style chat completion upstream: usage is prompt 11 + `max_tokens` completion tokens
 * (or 5 when absent); model "hostile" reports HOSTILE_TOKENS whatever it produced.
 */
class CompletionUpstream {
  readonly bodies: Record<string, unknown>[] = [];
  private server?: http.Server;
  port = 0;

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = http.createServer((req, res) => {
      if (req.url === "/health") return void res.writeHead(200).end("ok");
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString() || "{}") as Record<string, unknown>;
        this.bodies.push(body);
        const completion = typeof body.max_tokens === "number" ? body.max_tokens : 5;
        const usage =
          body.model === "hostile"
            ? { prompt_tokens: 1, completion_tokens: HOSTILE_TOKENS - 1, total_tokens: HOSTILE_TOKENS }
            : { prompt_tokens: 11, completion_tokens: completion, total_tokens: 11 + completion };
        if (body.stream === true) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          let n = 0;
          const timer = setInterval(() => {
            res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: `t${n}` } }] })}\n\n`);
            if (++n < 3) return;
            clearInterval(timer);
            const asked = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage;
            if (asked) res.write(`data: ${JSON.stringify({ choices: [], usage })}\n\n`);
            res.end("data: [DONE]\n\n");
          }, 100);
          return;
        }
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ choices: [{ message: { role: "assistant", content: "hi" } }], usage }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A POST through node:http, which exposes HTTP trailers (the streamed receipt travels in one). */
function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: "POST", headers: { "content-type": "application/json", ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("x402 upto: metered inference settled for the tokens used (anvil, facilitator, gateway: real processes)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let gateway: ManagedProcess;
  let controller: ManagedProcess;
  const upstream = new CompletionUpstream();
  let publicUrl: string;
  let logDir: string;
  let namespace: string;
  const buyerKey = ANVIL_KEYS[3] as `0x${string}`;
  const buyer = privateKeyToAccount(buyerKey);
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;
  const completions = () => `${publicUrl}/services/llm/v1/chat/completions`;

  const uptoClient = () => {
    const client = new x402Client();
    client.register("eip155:*", new UptoEvmScheme(buyer));
    client.setSpendControls(false);
    return client;
  };

  /** The 402 for `body`, then a payment signed with the upto client, as a header. */
  async function pay(body: string): Promise<{ header: Record<string, string>; maximum: bigint }> {
    const unpaid = await post(completions(), body);
    assert.equal(unpaid.status, 402);
    const required = decodePaymentRequiredHeader(String(unpaid.headers["payment-required"]));
    const upto = defined(
      required.accepts.find((r) => r.scheme === "upto"),
      "the 402 offers upto",
    );
    const payload = await uptoClient().createPaymentPayload({ ...required, accepts: [upto] });
    return {
      header: { "payment-signature": encodePaymentSignatureHeader(payload) },
      maximum: BigInt(upto.amount),
    };
  }

  before(async () => {
    logDir = path.join(scratchDir("upto"), "logs");
    cp = await sharedControlPlane();
    await installCrds(cp);
    const ns = `upto-${process.pid}`;
    namespace = ns;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.permit2Token.mint(buyer.address, 1_000_000_000n);
    await chain.permit2Token.approvePermit2(buyerKey);
    await upstream.start();
    const facilitatorPort = await freePort();
    facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: ANVIL_KEYS[0],
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
    });
    await waitForHttp("the facilitator", `http://127.0.0.1:${facilitatorPort}/supported`, facilitator);
    const seller = await startSellerRuntime({
      cp,
      namespace: ns,
      logDir,
      facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
    });
    ({ gateway, controller, publicUrl } = seller);
    await createObject(cp, ns, "serviceoffers", "ServiceOffer", "llm", {
      type: "inference",
      model: { name: "m" },
      upstream: { url: `http://127.0.0.1:${upstream.port}`, healthPath: "/health" },
      payment: {
        scheme: "exact",
        network: chain.network,
        payTo,
        asset: chain.permit2Token.asset,
        price: { perMTok: "10" },
        maxTimeoutSeconds: 120,
      },
      schemes: ["exact", "upto"],
      path: "/services/llm",
    });
    await waitForCondition(
      cp,
      ns,
      "serviceoffers",
      "llm",
      { type: "Ready", status: "True" },
      { logs: [controller, gateway] },
    );
    await waitFor("the offer routed", async () => (await post(completions(), "{}")).status === 402, {
      timeoutMs: 10_000,
    });
  });

  after(async () => {
    await Promise.all([gateway?.stop(), controller?.stop(), facilitator?.stop()]);
    await upstream.stop();
    await chain?.stop();
  });

  it("offers upto next to exact, its maximum sized by max_tokens and the request", async () => {
    const body = JSON.stringify({ model: "m", max_tokens: 40, messages: [{ role: "user", content: "hi" }] });
    const required = decodePaymentRequiredHeader(
      String((await post(completions(), body)).headers["payment-required"]),
    );
    const schemes = required.accepts.map((r) => r.scheme);
    assert.deepEqual(schemes, ["exact", "upto"]);
    const upto = defined(
      required.accepts.find((r) => r.scheme === "upto"),
      "upto",
    );
    const cap = uptoTokenCap({ maxTokens: 40, bodyBytes: Buffer.byteLength(body) });
    assert.equal(BigInt(upto.amount), cap * PER_TOKEN);
    assert.ok(upto.extra?.facilitatorAddress, "names the facilitator its witness must bind");
    const services = (await (await fetch(`${publicUrl}/api/services.json`)).json()) as {
      services: { name: string; payments: { schemes: { scheme: string; charge: string }[] }[] }[];
    };
    const listed = defined(
      services.services.find((x) => x.name === "llm"),
      "the offer in services.json",
    );
    assert.deepEqual(
      listed.payments[0]?.schemes.map((x) => x.scheme),
      ["exact", "upto"],
    );
    assert.match(await (await fetch(`${publicUrl}/skill.md`)).text(), /upto: sign a maximum/);
  });

  it("a non-streamed completion settles exactly the tokens reported, less than the signed maximum", async () => {
    const body = JSON.stringify({
      model: "m",
      max_tokens: 30,
      messages: [{ role: "user", content: "hello" }],
    });
    const { header, maximum } = await pay(body);
    const [sellerBefore, buyerBefore] = [
      await chain.permit2Token.balanceOf(payTo),
      await chain.permit2Token.balanceOf(buyer.address),
    ];
    const res = await post(completions(), body, header);
    assert.equal(res.status, 200, res.body);
    const expected = (11n + 30n) * PER_TOKEN;
    assert.ok(expected < maximum, `${expected} < ${maximum}`);
    const receipt = decodePaymentResponseHeader(String(res.headers["payment-response"])) as SettleResponse;
    assert.equal(receipt.success, true);
    assert.equal(receipt.amount, expected.toString());
    assert.equal(receipt.extra?.tokens, "41");
    assert.equal((await chain.permit2Token.balanceOf(payTo)) - sellerBefore, expected);
    assert.equal(
      buyerBefore - (await chain.permit2Token.balanceOf(buyer.address)),
      expected,
      "the buyer paid less than it signed",
    );
    assert.equal(JSON.parse(res.body).usage.total_tokens, 41, "the body reaches the buyer whole");
  });

  it("a streamed completion: the gateway asks for the usage chunk, settles exactly it at the end, receipt as a trailer", async () => {
    const body = JSON.stringify({
      model: "m",
      stream: true,
      max_tokens: 20,
      messages: [{ role: "user", content: "x" }],
    });
    const { header } = await pay(body);
    const sellerBefore = await chain.permit2Token.balanceOf(payTo);
    const res = await post(completions(), body, header);
    assert.equal(res.status, 200, res.body);
    assert.match(res.body, /t0[\s\S]*t2[\s\S]*\[DONE\]/);
    const sent = defined(upstream.bodies.at(-1), "the upstream request");
    assert.deepEqual(sent.stream_options, { include_usage: true }, "asked upstream for usage");
    const expected = (11n + 20n) * PER_TOKEN;
    const receipt = decodePaymentResponseHeader(
      defined(res.trailers["payment-response"], "trailer"),
    ) as SettleResponse;
    assert.equal(receipt.success, true);
    assert.equal(receipt.amount, expected.toString());
    assert.equal((await chain.permit2Token.balanceOf(payTo)) - sellerBefore, expected);
  });

  it("an upstream reporting more tokens than the maximum is settled at the maximum, never more", async () => {
    const body = JSON.stringify({
      model: "hostile",
      max_tokens: 10,
      messages: [{ role: "user", content: "x" }],
    });
    const { header, maximum } = await pay(body);
    const sellerBefore = await chain.permit2Token.balanceOf(payTo);
    const res = await post(completions(), body, header);
    assert.equal(res.status, 200, res.body);
    const receipt = decodePaymentResponseHeader(String(res.headers["payment-response"])) as SettleResponse;
    assert.equal(receipt.amount, maximum.toString());
    assert.equal(receipt.extra?.capped, "over_maximum");
    assert.ok(maximum < BigInt(HOSTILE_TOKENS) * PER_TOKEN);
    assert.equal((await chain.permit2Token.balanceOf(payTo)) - sellerBefore, maximum);
  });

  it("the buyer proxy pays upto sellers, plain and streamed: the ledger and status record the settled amount (the streamed one from the receipt trailer), the budget releases the rest", async () => {
    const port = await freePort();
    const buyerUrl = `http://127.0.0.1:${port}`;
    const ledgerPath = path.join(logDir, "..", "buyer", "ledger.jsonl");
    const ns = namespace;
    // The maximum of the call below is about 1000 units and it settles 310: a second call fits
    // only if the first one's unused remainder was released.
    await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "metered", {
      endpoint: `${publicUrl}/services/llm`,
      model: "metered-model",
      payment: {
        network: chain.network,
        asset: chain.permit2Token.asset.address,
        decimals: 6,
        maxPrice: "0.01",
      },
      budget: { maxPerRequest: "0.01", maxTotal: "0.0016" },
    });
    const buyerProc = startRuntime(
      "buyer",
      "buyer",
      [
        ...["--kubeconfig", cp.kubeconfigPath, "--namespace", ns, "--port", String(port)],
        ...["--host", "127.0.0.1", "--resolve-interval-ms", "500"],
      ],
      logDir,
      { SIGNER_KEY: buyerKey, LEDGER_PATH: ledgerPath },
    );
    try {
      await waitForHttp("the buyer", `${buyerUrl}/healthz`, buyerProc);
      const chat = (stream = false) =>
        fetch(`${buyerUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "paid/metered-model",
            max_tokens: 20,
            ...(stream ? { stream: true } : {}),
            messages: [{ role: "user", content: "hi" }],
          }),
        });
      const settled = (11n + 20n) * PER_TOKEN;
      // The second call streams: its receipt arrives only as a trailer after the last chunk.
      for (const [call, stream] of [
        [1, false],
        [2, true],
      ] as const) {
        const before = await chain.permit2Token.balanceOf(buyer.address);
        await waitFor(
          "the buyer resolved the seller",
          async () => {
            const res = await chat(stream);
            if (res.status === 502) return false;
            const text = await res.text();
            assert.equal(res.status, 200, `call ${call}: ${text}`);
            if (stream) assert.match(text, /t0[\s\S]*t2[\s\S]*\[DONE\]/, "the stream arrives whole");
            return true;
          },
          { timeoutMs: 20_000 },
        );
        assert.equal(
          before - (await chain.permit2Token.balanceOf(buyer.address)),
          settled,
          `call ${call} paid the usage`,
        );
      }
      const third = await chat();
      assert.equal(third.status, 402, "a third maximum does not fit the budget");
      await waitForSpend(cp, ns, "metered", "0.00062", 2);
    } finally {
      await buyerProc.stop();
    }
  });

  it("a request over 1 MiB to a metered offer is refused with 413 request_too_large (the answer arrives), nothing proxied", async () => {
    const before = upstream.bodies.length;
    const big = JSON.stringify({ model: "m", max_tokens: 5, prompt: "x".repeat(1 << 20) });
    const res = await post(completions(), big);
    assert.equal(res.status, 413, res.body);
    assert.equal(JSON.parse(res.body).error, "request_too_large");
    assert.equal(upstream.bodies.length, before);
  });

  it("a payment signed for another request's maximum is refused before anything is proxied", async () => {
    const { header } = await pay(JSON.stringify({ model: "m", max_tokens: 5 }));
    const before = upstream.bodies.length;
    const res = await post(completions(), JSON.stringify({ model: "m", max_tokens: 5000 }), header);
    assert.equal(res.status, 402);
    assert.equal(JSON.parse(res.body).error, "amount_mismatch");
    assert.equal(upstream.bodies.length, before);
  });
});
