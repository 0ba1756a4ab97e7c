/**
 * The gateway verifying and settling through a facilitator this project did not write: x402-rs
 * (the Rust implementation, crates x402-facilitator-local / x402-chain-eip155 / x402-types at
 * X402_RS_VERSION in scripts/toolchain/versions.env), built by `npm run tools` into the tool cache.
 * Real processes on loopback and anvil; buyers use x402's own clients.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { wrapFetchWithPayment } from "@x402/fetch";
import { type Address, createWalletClient, http as viemHttp } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { decodeXPaymentResponse, wrapFetchWithPayment as wrapFetchWithPaymentV1 } from "x402-fetch";
import { ANVIL_KEYS } from "../harness/anvil";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, startProcess, tail } from "../harness/processes";
import { v2Client } from "../harness/x402Buyers";
import {
  createNamespace,
  createPaidOffer,
  installCrds,
  type SellerRuntime,
  startSellerRuntime,
  Upstream,
  waitForHttp,
} from "./runtime/helpers";

const PRICE = 1000n; // "0.001" of a 6-decimals token

/** The x402-rs facilitator binary from the tool cache (scripts/with-tools puts it on PATH). */
function x402RsBinary(): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "x402-rs-facilitator");
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(
    "x402-rs-facilitator is not on PATH: run `npm run tools`, then the tests through scripts/with-tools",
  );
}

describe("the gateway settling through the x402-rs facilitator (Rust, real processes, anvil)", function () {
  this.timeout(5 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let facilitator: ManagedProcess;
  let facilitatorUrl: string;
  let seller: SellerRuntime;
  let ns: string;
  const upstream = new Upstream();
  const payer = privateKeyToAccount(ANVIL_KEYS[2]);
  const payTo = privateKeyToAccount(generatePrivateKey()).address;
  const served = (url: string) => upstream.requests.filter((r) => r.url === url).length;
  const url = (offer: string, p: string) => `${seller.publicUrl}/services/${offer}${p}`;

  async function balances(token: { balanceOf(a: Address): Promise<bigint> }): Promise<[bigint, bigint]> {
    return [await token.balanceOf(payer.address), await token.balanceOf(payTo)];
  }

  before(async () => {
    const logDir = path.join(scratchDir("x402rs"), "logs");
    const binary = x402RsBinary();
    cp = await sharedControlPlane();
    await installCrds(cp);
    ns = `x402rs-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.mint(payer.address, 10_000_000n);
    await chain.permit2Token.mint(payer.address, 10_000_000n);
    await chain.permit2Token.approvePermit2(ANVIL_KEYS[2]);
    await upstream.start();

    // x402-rs's own config format; the signer key is read from the environment, not the file.
    const port = await freePort();
    facilitatorUrl = `http://127.0.0.1:${port}`;
    const configFile = path.join(logDir, "x402-rs.json");
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        host: "127.0.0.1",
        port,
        chains: { [chain.network]: { signers: ["$X402RS_SIGNER_KEY"], rpc: [{ http: chain.anvil.rpcUrl }] } },
        schemes: [
          { id: "v1-eip155-exact", chains: "eip155:*" },
          { id: "v2-eip155-exact", chains: "eip155:*" },
        ],
      }),
    );
    facilitator = startProcess("x402-rs-facilitator", binary, [configFile], {
      logDir,
      env: { ...process.env, X402RS_SIGNER_KEY: ANVIL_KEYS[0], RUST_LOG: "info" },
    });
    await waitForHttp("the x402-rs facilitator", `${facilitatorUrl}/supported`, facilitator);

    seller = await startSellerRuntime({ cp, namespace: ns, logDir, facilitatorUrl });
    for (const [name, asset] of [
      ["rs-eip3009", chain.asset],
      ["rs-permit2", chain.permit2Token.asset],
    ] as const) {
      await createPaidOffer(cp, ns, name, {
        upstreamPort: upstream.port,
        network: chain.network,
        payTo,
        asset,
        logs: [seller.controller, seller.gateway],
        routedAt: [seller.publicUrl],
      });
    }
  });

  after(async () => {
    await seller?.stop();
    await facilitator?.stop();
    await upstream.stop();
    await chain?.stop();
  });

  it("advertises the exact scheme for the test chain in /supported (v1 and v2)", async () => {
    const supported = (await (await fetch(`${facilitatorUrl}/supported`)).json()) as {
      kinds: { x402Version: number; scheme: string; network: string }[];
    };
    const kinds = supported.kinds.map((k) => `${k.x402Version}/${k.scheme}/${k.network}`);
    assert.ok(
      kinds.includes(`2/exact/${chain.network}`),
      `v2 exact on ${chain.network}: ${kinds.join(", ")}`,
    );
    assert.ok(kinds.includes("1/exact/base-sepolia"), `v1 exact on base-sepolia: ${kinds.join(", ")}`);
  });

  it("EIP-3009 (v2, @x402/fetch): x402-rs verifies and settles, the price moves once, the receipt decodes", async () => {
    const [payerBefore, sellerBefore] = await balances(chain);
    const res = await wrapFetchWithPayment(fetch, v2Client(payer))(url("rs-eip3009", "/v2"));
    assert.equal(res.status, 200, `${await res.clone().text()}\n${tail(facilitator.logFile)}`);
    const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
    assert.equal(receipt.success, true);
    assert.equal(receipt.network, chain.network);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    const onChain = await chain.client.getTransactionReceipt({ hash: receipt.transaction as `0x${string}` });
    assert.equal(onChain.status, "success", "the transaction x402-rs sent was mined");
    assert.deepEqual(await balances(chain), [payerBefore - PRICE, sellerBefore + PRICE]);
    assert.equal(served("/v2"), 1);
  });

  it("EIP-3009 (v1, x402-fetch 1.x): x402-rs settles a v1 payment the gateway forwards", async () => {
    const [payerBefore, sellerBefore] = await balances(chain);
    const wallet = createWalletClient({
      account: payer,
      chain: baseSepolia,
      transport: viemHttp(chain.anvil.rpcUrl),
    });
    const res = await wrapFetchWithPaymentV1(fetch, wallet as never)(url("rs-eip3009", "/v1"));
    assert.equal(res.status, 200, `${await res.clone().text()}\n${tail(facilitator.logFile)}`);
    const receipt = decodeXPaymentResponse(res.headers.get("x-payment-response")!);
    assert.equal(receipt.success, true);
    assert.deepEqual(await balances(chain), [payerBefore - PRICE, sellerBefore + PRICE]);
    assert.equal(served("/v1"), 1);
  });

  it("Permit2 (v2, @x402/fetch): x402-rs settles through x402's exact Permit2 proxy", async () => {
    const token = chain.permit2Token;
    const [payerBefore, sellerBefore] = await balances(token);
    const res = await wrapFetchWithPayment(fetch, v2Client(payer))(url("rs-permit2", "/p2"));
    assert.equal(res.status, 200, `${await res.clone().text()}\n${tail(facilitator.logFile)}`);
    const receipt = decodePaymentResponseHeader(res.headers.get("payment-response")!);
    assert.equal(receipt.success, true);
    assert.deepEqual(await balances(token), [payerBefore - PRICE, sellerBefore + PRICE]);
    assert.equal(served("/p2"), 1);
  });

  it("a payment x402-rs finds invalid (the payer has no funds) is refused: nothing proxied, nothing moved", async () => {
    const broke = privateKeyToAccount(generatePrivateKey());
    const sellerBefore = await chain.balanceOf(payTo);
    const res = await wrapFetchWithPayment(fetch, v2Client(broke))(url("rs-eip3009", "/broke"));
    assert.equal(res.status, 402, await res.clone().text());
    const body = (await res.json()) as { error?: string };
    assert.ok(body.error, "the refusal says why");
    assert.equal(served("/broke"), 0, "the upstream never saw the request");
    assert.equal(await chain.balanceOf(payTo), sellerBefore);
  });

  it("a replayed payment is refused: x402-rs and the gateway settle it once", async () => {
    const client = v2Client(payer);
    let header = "";
    const capture: typeof fetch = async (input, init) => {
      const sent = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      header ||= sent.get("payment-signature") ?? "";
      return fetch(input, init);
    };
    const [payerBefore] = await balances(chain);
    const first = await wrapFetchWithPayment(capture, client)(url("rs-eip3009", "/once"));
    assert.equal(first.status, 200);
    assert.ok(header, "the client sent a PAYMENT-SIGNATURE");
    const replay = await fetch(url("rs-eip3009", "/once"), { headers: { "payment-signature": header } });
    assert.equal(replay.status, 402, await replay.clone().text());
    assert.equal(served("/once"), 1);
    assert.equal(await chain.balanceOf(payer.address), payerBefore - PRICE);
  });
});
