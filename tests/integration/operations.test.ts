/**
 * Operating the stack, with every part a real process on loopback: anvil, the facilitator, two
 * gateway replicas, the controller and the buyer. Structured logs with a request id from the
 * client to the upstream and into the settlement line, no secret in any log, Prometheus metrics
 * on every process asserted from real paid requests, the dashboard's and alerts' metric names
 * against that real output, and the double-spend race across two gateway replicas.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../harness/anvil";
import { at, defined } from "../harness/assertions";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { type PaymentChain, startPaymentChain } from "../harness/paymentChain";
import { freePort, type ManagedProcess, waitFor } from "../harness/processes";
import { metricNames, repositoryQueries, sampleValue } from "../harness/promql";
import {
  createNamespace,
  createObject,
  createPaidOffer,
  installCrds,
  startRuntime,
  Upstream,
  waitForHttp,
} from "./runtime/helpers";

const PRICE = 1000n; // "0.001" at 6 decimals

interface Gateway {
  proc: ManagedProcess;
  publicUrl: string;
  internalUrl: string;
}

/** Metric names an exposition declares (`# TYPE`), with a histogram's series suffixes. */
function declaredMetrics(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(`${name}${s}`);
  }
  return names;
}

describe("operating the stack: logs, metrics, dashboard, two gateway replicas (real processes)", function () {
  this.timeout(6 * 60_000);

  let cp: ControlPlane;
  let chain: PaymentChain;
  let ns: string;
  let logDir: string;
  const upstream = new Upstream();
  const processes: ManagedProcess[] = [];
  const gateways: Gateway[] = [];
  let facilitatorUrl: string;
  let controllerUrl: string;
  let buyerUrl: string;
  const facilitatorKey = ANVIL_KEYS[0];
  const buyerKey = ANVIL_KEYS[2];
  const buyerProcKey = ANVIL_KEYS[3];
  const payer = privateKeyToAccount(buyerKey);
  const payTo = privateKeyToAccount(generatePrivateKey()).address as Address;

  const payingClient = () => {
    const client = new x402Client();
    registerExactEvmScheme(client, { signer: payer });
    client.setSpendControls(false);
    return client;
  };
  const offerUrl = (g: Gateway, sub = "") => `${g.publicUrl}/services/paid${sub}`;
  const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();
  /** A sample's value, 0 while the series does not exist yet. */
  const sample = (text: string, name: string, labels: Record<string, string> = {}) =>
    sampleValue(text, name, labels) || 0;

  /** Signs one payment and sends it to both gateway replicas at once. */
  const sendToBothReplicas = async (sub: string) => {
    const [a, b] = [at(gateways, 0), at(gateways, 1)];
    const required = decodePaymentRequiredHeader(
      defined(
        (await fetch(offerUrl(a, sub))).headers.get("payment-required") ?? undefined,
        "PAYMENT-REQUIRED",
      ),
    );
    const header = encodePaymentSignatureHeader(await payingClient().createPaymentPayload(required));
    const results = await Promise.all(
      [a, b].map(async (g) => {
        const res = await fetch(offerUrl(g, sub), { headers: { "payment-signature": header } });
        return { status: res.status, body: await res.text() };
      }),
    );
    return { header, results };
  };

  const startGateway = async (name: string): Promise<Gateway> => {
    const [port, internalPort] = [await freePort(), await freePort()];
    const proc = startRuntime(
      name,
      "gateway",
      ["--kubeconfig", cp.kubeconfigPath, "--namespace", ns, "--port", String(port), "--host", "127.0.0.1"],
      logDir,
      {
        INTERNAL_PORT: String(internalPort),
        INTERNAL_HOST: "127.0.0.1",
        FACILITATOR_URL: facilitatorUrl,
        GATEWAY_REPLICAS: "2",
      },
    );
    processes.push(proc);
    const g = {
      proc,
      publicUrl: `http://127.0.0.1:${port}`,
      internalUrl: `http://127.0.0.1:${internalPort}`,
    };
    await waitForHttp(name, `${g.internalUrl}/healthz`, proc);
    return g;
  };

  before(async () => {
    logDir = path.join(scratchDir("operations"), "logs");
    cp = await sharedControlPlane();
    await installCrds(cp);
    ns = `ops-${process.pid}`;
    await createNamespace(cp, ns);
    chain = await startPaymentChain(logDir);
    await chain.mint(payer.address, 10_000_000n);
    await chain.mint(privateKeyToAccount(buyerProcKey).address, 10_000_000n);
    await upstream.start();

    const facilitatorPort = await freePort();
    facilitatorUrl = `http://127.0.0.1:${facilitatorPort}`;
    const facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: facilitatorKey,
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
      BALANCE_REFRESH_MS: "1000",
    });
    processes.push(facilitator);
    await waitForHttp("the facilitator", `${facilitatorUrl}/supported`, facilitator);

    gateways.push(await startGateway("gateway-a"), await startGateway("gateway-b"));
    const controllerPort = await freePort();
    controllerUrl = `http://127.0.0.1:${controllerPort}`;
    const controller = startRuntime(
      "controller",
      "controller",
      [
        ...["--kubeconfig", cp.kubeconfigPath, "--namespace", ns],
        ...["--gateway-internal-url", gateways[0]!.internalUrl, "--port", String(controllerPort)],
        ...["--probe-interval-ms", "1000"],
      ],
      logDir,
    );
    processes.push(controller);
    await waitForHttp("the controller", `${controllerUrl}/healthz`, controller);

    await createPaidOffer(cp, ns, "paid", {
      upstreamPort: upstream.port,
      network: chain.network,
      payTo,
      asset: chain.asset,
      logs: [controller, ...gateways.map((g) => g.proc)],
      routedAt: gateways.map((g) => g.publicUrl),
    });

    // The buyer, with a purchase of this offer and a budget of three calls.
    await createObject(cp, ns, "purchaserequests", "PurchaseRequest", "ops", {
      endpoint: offerUrl(gateways[0]!),
      model: "ops-model",
      payment: { network: chain.network, asset: chain.asset.address, decimals: 6, maxPrice: "0.001" },
      budget: { maxPerRequest: "0.001", maxTotal: "0.003" },
    });
    const buyerPort = await freePort();
    buyerUrl = `http://127.0.0.1:${buyerPort}`;
    const buyer = startRuntime(
      "buyer",
      "buyer",
      [
        "--kubeconfig",
        cp.kubeconfigPath,
        "--namespace",
        ns,
        "--port",
        String(buyerPort),
        "--host",
        "127.0.0.1",
      ],
      logDir,
      { SIGNER_KEY: buyerProcKey, LEDGER_PATH: path.join(logDir, "..", "buyer-ledger.jsonl") },
    );
    processes.push(buyer);
    await waitForHttp("the buyer", `${buyerUrl}/healthz`, buyer);
  });

  after(async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await upstream.stop();
    await chain?.stop();
  });

  it("carries the client's request id to the upstream, back in the response, and into the settlement log", async () => {
    const id = "ops-trace-0001-abcdef";
    const res = await wrapFetchWithPayment(fetch, payingClient())(offerUrl(gateways[0]!, "/hello"), {
      headers: { "x-request-id": id },
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-request-id"), id);
    const seen = upstream.requests.filter((r) => r.url === "/hello");
    assert.equal(seen.at(-1)?.headers["x-request-id"], id);

    let settled: Record<string, unknown> | undefined;
    await waitFor(
      "the settlement log line",
      async () => {
        settled = fs
          .readFileSync(gateways[0]!.proc.logFile, "utf8")
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((r) => r.msg === "x402: settled" && r.requestId === id);
        return settled !== undefined;
      },
      { timeoutMs: 5_000 },
    );
    assert.ok(settled);
    assert.equal(settled.component, "gateway");
    assert.equal(settled.offer, "paid");
    assert.equal(settled.amount, PRICE.toString());
    assert.equal(settled.payer, payer.address);
    assert.match(String(settled.transaction), /^0x[0-9a-f]{64}$/);

    // A malformed id is not trusted: the gateway makes its own and passes that on.
    const bad = await fetch(offerUrl(gateways[0]!, "/free-id"), { headers: { "x-request-id": "no good" } });
    assert.equal(bad.status, 402);
    assert.match(bad.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });

  it("the buyer sends its request id to the seller, pays within budget, and counts amounts and budget", async () => {
    const res = await fetch(`${buyerUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "agent-call-000042" },
      body: JSON.stringify({ model: "paid/ops-model", messages: [] }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get("x-request-id"), "agent-call-000042");
    const seen = upstream.requests.filter((r) => r.url === "/v1/chat/completions").at(-1);
    assert.equal(
      seen?.headers["x-request-id"],
      "agent-call-000042",
      "the same id reached the seller's upstream",
    );

    const text = await metricsOf(buyerUrl);
    const labels = { purchase: "ops", network: chain.network, asset: chain.asset.address };
    assert.equal(sampleValue(text, "obol_buyer_payments_total", { purchase: "ops", outcome: "paid" }), 1);
    assert.equal(sampleValue(text, "obol_buyer_paid_atomic_total", labels), Number(PRICE));
    assert.equal(
      sampleValue(text, "obol_buyer_budget_remaining_atomic", { ...labels, window: "total" }),
      Number(3n * PRICE - PRICE),
    );
    assert.equal(sampleValue(text, "obol_buyer_budget_limit_atomic", { ...labels, window: "total" }), 3000);
    assert.equal(sampleValue(text, "obol_buyer_request_duration_seconds_count", { outcome: "paid" }), 1);
  });

  it("two replicas, one signed payment sent to both at once: one served and settled, the other refused, money moves once", async () => {
    const [a, b] = [at(gateways, 0), at(gateways, 1)];
    const [payerBefore, sellerBefore] = [await chain.balanceOf(payer.address), await chain.balanceOf(payTo)];
    const { header, results } = await sendToBothReplicas("/race");
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 402], JSON.stringify(results));
    const refused = results.find((r) => r.status === 402)!;
    assert.ok(
      !refused.body.includes('"echo":true'),
      "the refused replica never serves the upstream's answer",
    );
    assert.equal(await chain.balanceOf(payer.address), payerBefore - PRICE, "charged once");
    assert.equal(await chain.balanceOf(payTo), sellerBefore + PRICE, "received once");

    // And the same authorization again, at either replica: refused, nothing moves.
    for (const g of [a, b]) {
      const again = await fetch(offerUrl(g, "/race"), { headers: { "payment-signature": header } });
      assert.equal(again.status, 402);
    }
    assert.equal(await chain.balanceOf(payer.address), payerBefore - PRICE);
  });

  it("gateway, facilitator and controller metrics count what happened", async () => {
    // What this test does itself, counted from what the metrics said before it: it passes alone
    // and in any order. Two paid calls, one to each replica, and one payment sent to both at once.
    const [a, b] = [at(gateways, 0), at(gateways, 1)];
    const gatewayTexts = () => Promise.all(gateways.map((g) => metricsOf(g.internalUrl)));
    const [gatewaysBefore, fBefore] = [await gatewayTexts(), await metricsOf(facilitatorUrl)];
    for (const [g, sub] of [
      [a, "/count-a"],
      [b, "/count-b"],
    ] as const) {
      const res = await wrapFetchWithPayment(fetch, payingClient())(offerUrl(g, sub));
      assert.equal(res.status, 200, await res.clone().text());
    }
    const { header, results } = await sendToBothReplicas("/count-race");
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 402], JSON.stringify(results));
    for (const g of [a, b]) {
      assert.equal(
        (await fetch(offerUrl(g, "/count-race"), { headers: { "payment-signature": header } })).status,
        402,
      );
    }

    const gatewaysAfter = await gatewayTexts();
    const total = (f: (t: string) => number) =>
      gatewaysAfter.reduce((sum, t, i) => sum + f(t) - f(at(gatewaysBefore, i)), 0);
    const received = (t: string) =>
      sample(t, "x402_received_atomic_total", {
        offer: "paid",
        network: chain.network,
        asset: chain.asset.address,
      });
    const served = (t: string) => sample(t, "x402_requests_total", { offer: "paid", outcome: "served" });
    // The two calls and one race winner.
    assert.equal(total(served), 3);
    assert.equal(total(received), 3 * Number(PRICE));
    assert.ok(
      total((t) => sample(t, "x402_payments_failed_total", { offer: "paid" })) >= 3,
      "race loser and replays",
    );
    for (const g of gateways)
      assert.equal((await fetch(`${g.publicUrl}/metrics`)).status, 404, "never public");

    const facilitator = privateKeyToAccount(facilitatorKey).address;
    const balance = await chain.client.getBalance({ address: facilitator });
    let f = "";
    await waitFor(
      "the signer balance gauge to catch up",
      async () => {
        f = await metricsOf(facilitatorUrl);
        return (
          sampleValue(f, "obol_facilitator_signer_balance_wei", { address: facilitator }) === Number(balance)
        );
      },
      { timeoutMs: 10_000 },
    );
    const grew = (name: string, labels: Record<string, string>) =>
      sample(f, name, labels) - sample(fBefore, name, labels);
    assert.equal(grew("obol_facilitator_requests_total", { op: "settle", outcome: "settled" }), 3);
    assert.equal(
      grew("obol_facilitator_settled_atomic_total", { network: chain.network, asset: chain.asset.address }),
      3 * Number(PRICE),
    );
    assert.ok(grew("obol_facilitator_gas_spent_wei_total", { network: chain.network }) > 0);
    assert.ok(grew("obol_facilitator_duration_seconds_count", { op: "verify" }) >= 4);

    const c = await metricsOf(controllerUrl);
    // Each kind has its own reconciler; the manager counts and times every one of them.
    for (const kind of ["ServiceOffer", "PurchaseRequest"]) {
      assert.ok(sampleValue(c, "obol_controller_reconcile_total", { kind, result: "success" }) >= 1, kind);
      assert.ok(sampleValue(c, "obol_controller_reconcile_duration_seconds_count", { kind }) >= 1, kind);
    }
  });

  it("every metric the dashboard and the alerts query exists in the processes' real /metrics", async () => {
    const texts = await Promise.all(
      [...gateways.map((g) => g.internalUrl), facilitatorUrl, buyerUrl, controllerUrl].map(metricsOf),
    );
    const declared = new Set(texts.flatMap((t) => [...declaredMetrics(t)]));
    const missing = repositoryQueries().flatMap((q) =>
      metricNames(q.expr)
        .filter((n) => !declared.has(n))
        .map((n) => `${q.where}: ${n}`),
    );
    assert.deepEqual(missing, []);
  });

  it("every process logs JSON lines (level, time, component, msg) and never its signer key", () => {
    const keys = [facilitatorKey, buyerProcKey].map((k) => k.slice(2).toLowerCase());
    for (const proc of processes) {
      const lines = fs.readFileSync(proc.logFile, "utf8").split("\n").filter(Boolean);
      assert.ok(lines.length > 0, `${proc.name} logged nothing`);
      for (const line of lines) {
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          assert.fail(`${proc.name} wrote a line that is not JSON: ${line}`);
        }
        for (const field of ["level", "time", "component", "msg"])
          assert.ok(field in record, `${proc.name}: ${line}`);
        for (const key of keys)
          assert.ok(!line.toLowerCase().includes(key), `${proc.name} logged a signer key`);
      }
    }
  });
});
