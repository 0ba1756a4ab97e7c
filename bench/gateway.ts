/**
 * `npm run bench:gateway`: throughput and latency of the x402 gateway, every process on loopback.
 *   (a) a bare Node reverse proxy to the same upstream (the reference)
 *   (b) the gateway on a free route            → ratio (b)/(a), goal ≥ 0.8
 *   (c) the gateway answering 402
 *   (d) the gateway on a paid route: local checks + verification with the self-run facilitator
 *       (anvil), proxied; the upstream answers 500 so settlement (one chain transaction per
 *       request, by design) is excluded from the measurement.
 *   (e) the same paid workload through the official @x402/express middleware (bench/expressPeer.ts)
 */
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../tests/harness/anvil";
import { startControlPlane } from "../tests/harness/controlPlane";
import { RUN_DIR } from "../tests/harness/env";
import { startPaymentChain } from "../tests/harness/paymentChain";
import { freePort, type ManagedProcess, startProcess, waitFor } from "../tests/harness/processes";
import {
  createNamespace,
  createObject,
  installCrds,
  startRuntime,
  startSellerRuntime,
  waitForCondition,
  waitForHttp,
} from "../tests/integration/runtime/helpers";
import { load, row } from "./load";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const REPO = path.resolve(__dirname, "..");

async function main() {
  const dir = path.join(RUN_DIR, "bench-gateway");
  const logDir = path.join(dir, "logs");
  const procs: ManagedProcess[] = [];
  const cp = await startControlPlane({ dir: path.join(dir, "cluster") });
  const chain = await startPaymentChain(logDir);
  try {
    await installCrds(cp);
    await createNamespace(cp, "bench");
    const buyer = privateKeyToAccount(ANVIL_KEYS[2]);
    await chain.mint(buyer.address, 1_000_000_000n);

    const tsx = path.join(REPO, "node_modules/tsx/dist/cli.mjs");
    const [upstreamPort, barePort, facilitatorPort, expressPort] = await Promise.all(
      Array.from({ length: 4 }, () => freePort()),
    );
    const server = (name: string, args: string[]) => {
      const p = startProcess(name, process.execPath, [tsx, path.join(REPO, "bench/servers.ts"), ...args], {
        logDir,
      });
      procs.push(p);
      return p;
    };
    server("upstream", ["upstream", String(upstreamPort)]);
    server("bare-proxy", ["bare-proxy", String(barePort), String(upstreamPort)]);
    const facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: ANVIL_KEYS[0],
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
    });
    procs.push(facilitator);
    await waitForHttp("the facilitator", `http://127.0.0.1:${facilitatorPort}/supported`, facilitator);
    const seller = await startSellerRuntime({
      cp,
      namespace: "bench",
      logDir,
      facilitatorUrl: `http://127.0.0.1:${facilitatorPort}`,
      controllerArgs: [],
    });
    procs.push(seller.gateway, seller.controller);
    await createObject(cp, "bench", "serviceoffers", "ServiceOffer", "bench", {
      type: "http",
      upstream: { url: `http://127.0.0.1:${upstreamPort}`, healthPath: "/health" },
      payment: {
        scheme: "exact",
        network: chain.network,
        payTo: privateKeyToAccount(ANVIL_KEYS[1]).address,
        asset: chain.asset,
        price: { perRequest: "0.001" },
        maxTimeoutSeconds: 600,
      },
      path: "/services/bench",
      routes: [{ path: "/free/*", gate: "free" }],
    });
    await waitForCondition(
      cp,
      "bench",
      "serviceoffers",
      "bench",
      { type: "Ready", status: "True" },
      { timeoutMs: 60_000 },
    );
    const gw = `${seller.publicUrl}/services/bench`;
    const sellerAddress = privateKeyToAccount(ANVIL_KEYS[1]).address;
    procs.push(
      startProcess(
        "express-peer",
        process.execPath,
        [
          tsx,
          path.join(REPO, "bench/expressPeer.ts"),
          String(expressPort),
          String(upstreamPort),
          `http://127.0.0.1:${facilitatorPort}`,
          chain.network,
          sellerAddress,
          JSON.stringify(chain.asset),
        ],
        { logDir },
      ),
    );
    const peer = `http://127.0.0.1:${expressPort}`;
    await waitFor(
      "the express peer",
      async () => (await fetch(`${peer}/fail`).catch(() => undefined))?.status === 402,
      {
        timeoutMs: 30_000,
      },
    );
    await waitFor("the route", async () => (await fetch(`${gw}/free/x`)).status === 200, {
      timeoutMs: 10_000,
    });

    // Pre-signed payments (signing is the buyer's cost, not the gateway's).
    const required = decodePaymentRequiredHeader(
      (await fetch(`${gw}/fail`)).headers.get("payment-required")!,
    );
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: buyer });
    client.setSpendControls(false);
    const paidCount = CONCURRENCY * SECONDS * 40;
    const payments: string[] = [];
    for (let i = 0; i < paidCount; i++)
      payments.push(encodePaymentSignatureHeader(await client.createPaymentPayload(required)));
    const peerRequired = decodePaymentRequiredHeader(
      (await fetch(`${peer}/fail`)).headers.get("payment-required")!,
    );
    const peerPayments: string[] = [];
    for (let i = 0; i < paidCount; i++)
      peerPayments.push(encodePaymentSignatureHeader(await client.createPaymentPayload(peerRequired)));

    console.log(`gateway benchmark: ${CONCURRENCY} concurrent clients, ${SECONDS} s per run, loopback`);
    const bare = await load({
      url: `http://127.0.0.1:${barePort}/free/x`,
      seconds: SECONDS,
      concurrency: CONCURRENCY,
    });
    console.log(row("(a) bare Node reverse proxy", bare));
    const free = await load({ url: `${gw}/free/x`, seconds: SECONDS, concurrency: CONCURRENCY });
    console.log(row("(b) gateway, free route", free));
    const unpaid = await load({ url: `${gw}/paid`, seconds: SECONDS, concurrency: CONCURRENCY });
    console.log(row("(c) gateway, 402 answer", unpaid));
    const paid = await load({
      url: `${gw}/fail`,
      seconds: SECONDS,
      concurrency: CONCURRENCY,
      headers: (i) => ({ "payment-signature": payments[i % payments.length] }),
    });
    console.log(row("(d) gateway, paid: verify + proxy (no settle)", paid));
    const express = await load({
      url: `${peer}/fail`,
      seconds: SECONDS,
      concurrency: CONCURRENCY,
      headers: (i) => ({ "payment-signature": peerPayments[i % peerPayments.length] }),
    });
    console.log(row("(e) @x402/express peer, same paid workload", express));
    console.log(`ratio (b)/(a) = ${(free.rps / bare.rps).toFixed(2)} (goal >= 0.8)`);
    console.log(
      `ratio (d)/(e) = ${(paid.rps / express.rps).toFixed(2)} (goal >= 1: the gateway at least matches the middleware, and streams)`,
    );
    if (paid.requests > payments.length)
      console.log(
        "note: (d) reused payments after exhausting the pre-signed ones (replays are refused fast)",
      );
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await chain.stop();
    await cp.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
