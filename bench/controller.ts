/**
 * `npm run bench:controller`: time for the controller to bring N ServiceOffers (healthy loopback
 * upstream) to Ready, against the time the same API server takes to accept N plain status
 * writes from a client (the floor: the controller must write each status at least once).
 * Prints both and their ratio for N = 100 and 1000 (BENCH_SIZES to override). Goal: ≤ 2 at 1000.
 */
import * as http from "node:http";
import * as path from "node:path";
import { chainInfo } from "../api/chains";
import { startControlPlane } from "../tests/harness/controlPlane";
import { RUN_DIR } from "../tests/harness/env";
import { freePort, type ManagedProcess, waitFor } from "../tests/harness/processes";
import {
  api,
  createNamespace,
  crPath,
  installCrds,
  startRuntime,
  waitForHttp,
} from "../tests/integration/runtime/helpers";

const SIZES = (process.env.BENCH_SIZES ?? "100,1000").split(",").map(Number);
const USDC = chainInfo("eip155:84532")!.usdc!;

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function main() {
  const dir = path.join(RUN_DIR, "bench-controller");
  const logDir = path.join(dir, "logs");
  const cp = await startControlPlane({ dir: path.join(dir, "cluster") });
  const upstream = http.createServer((_req, res) => res.writeHead(200).end("ok"));
  const upstreamPort = await freePort();
  await new Promise<void>((r) => upstream.listen(upstreamPort, "127.0.0.1", r));
  const procs: ManagedProcess[] = [];
  try {
    await installCrds(cp);
    for (const n of SIZES) {
      const ns = `bench-${n}`;
      await createNamespace(cp, ns);
      const names = Array.from({ length: n }, (_, i) => `offer-${i}`);
      const spec = (i: number) => ({
        type: "http",
        upstream: { url: `http://127.0.0.1:${upstreamPort}`, healthPath: "/health" },
        payment: {
          scheme: "exact",
          network: "eip155:84532",
          payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
          asset: USDC,
          price: { perRequest: "0.001" },
          maxTimeoutSeconds: 300,
        },
        path: `/services/offer-${i}`,
      });
      await inParallel(names, 16, async (name) => {
        const i = Number(name.split("-")[1]);
        const res = await api(cp, "POST", crPath(ns, "serviceoffers"), {
          apiVersion: "obol.org/v1alpha1",
          kind: "ServiceOffer",
          metadata: { name, namespace: ns },
          spec: spec(i),
        });
        if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${res.body}`);
      });

      // The floor: N plain status writes from one client, 16 at a time.
      const floorStart = Date.now();
      await inParallel(names, 16, async (name) => {
        const res = await api(
          cp,
          "PATCH",
          `${crPath(ns, "serviceoffers", name)}/status`,
          { status: { endpoint: "/x" } },
          "application/merge-patch+json",
        );
        if (res.status !== 200) throw new Error(`status write ${name}: ${res.status}`);
      });
      const floor = (Date.now() - floorStart) / 1000;

      const [gatewayPort, internalPort, controllerPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const gateway = startRuntime(
        "gateway",
        "gateway",
        [
          "--kubeconfig",
          cp.kubeconfigPath,
          "--namespace",
          ns,
          "--port",
          String(gatewayPort),
          "--host",
          "127.0.0.1",
        ],
        logDir,
        {
          INTERNAL_PORT: String(internalPort),
          INTERNAL_HOST: "127.0.0.1",
          FACILITATOR_URL: "http://127.0.0.1:9",
        },
      );
      procs.push(gateway);
      await waitForHttp("the gateway", `http://127.0.0.1:${internalPort}/healthz`, gateway);
      const started = Date.now();
      const controller = startRuntime(
        "controller",
        "controller",
        [
          "--kubeconfig",
          cp.kubeconfigPath,
          "--namespace",
          ns,
          "--gateway-internal-url",
          `http://127.0.0.1:${internalPort}`,
          "--port",
          String(controllerPort),
        ],
        logDir,
      );
      procs.push(controller);
      await waitFor(
        `${n} offers Ready`,
        async () => {
          const res = await api(cp, "GET", crPath(ns, "serviceoffers"));
          const items = res.json<{
            items: { status?: { conditions?: { type: string; status: string }[] } }[];
          }>().items;
          return (
            items.filter((o) => o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
              .length === n
          );
        },
        { timeoutMs: 20 * 60_000, intervalMs: 500 },
      );
      const ready = (Date.now() - started) / 1000;
      console.log(
        `N=${String(n).padStart(4)}: all Ready in ${ready.toFixed(2)} s; ${n} plain status writes take ${floor.toFixed(2)} s; ratio ${(ready / floor).toFixed(2)} (goal <= 2 at 1000)`,
      );
      await controller.stop();
      await gateway.stop();
    }
  } finally {
    for (const p of procs) await p.stop();
    upstream.close();
    await cp.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
