/**
 * `npm run bench:controller`: time for the controller to bring N ServiceOffers (healthy loopback
 * upstream) to Ready, against the time the same API server takes to accept N plain status
 * writes from a client (the floor: the controller must write each status at least once).
 * Prints both and their ratio for N = 100 and 1000 (BENCH_SIZES to override). Goal: ≤ 2 at 1000.
 *
 * The clock starts when the controller process is spawned and stops when the last offer is seen
 * Ready on a watch (no polling: a LIST of N objects every few hundred ms would both load the API
 * server and round the result up). The runtime runs as the image runs it, compiled by tsc with
 * controller/tsconfig.build.json; BENCH_RUNTIME=tsx runs the sources through tsx instead (whose
 * module loading adds about 1.5 s to the controller's start).
 */
import { execFileSync } from "node:child_process";
import * as http from "node:http";
import * as https from "node:https";
import * as path from "node:path";
import { chainInfo } from "../api/chains";
import { type ControlPlane, startControlPlane } from "../tests/harness/controlPlane";
import { RUN_DIR } from "../tests/harness/env";
import { freePort, type ManagedProcess, startProcess } from "../tests/harness/processes";
import {
  api,
  createNamespace,
  crPath,
  installCrds,
  REPO,
  startRuntime,
  startSupportedOnlyFacilitator,
  waitForHttp,
} from "../tests/integration/runtime/helpers";

const SIZES = (process.env.BENCH_SIZES ?? "100,1000").split(",").map(Number);
const USDC = chainInfo("eip155:84532")!.usdc!;

async function inParallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  // One iterator shared by the workers: each item is taken exactly once.
  const queue = items.values();
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (const item of queue) await fn(item);
    }),
  );
}

/** `controller/main.ts <command>`: compiled into `dist` (as in the image), or through tsx. */
function runtimeStarter(dist: string | undefined, logDir: string) {
  return (name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): ManagedProcess =>
    dist
      ? startProcess(name, process.execPath, [path.join(dist, "controller/main.js"), command, ...args], {
          logDir,
          cwd: REPO,
          env: { ...process.env, KUBECONFIG: "", ...env },
        })
      : startRuntime(name, command, args, logDir, env);
}

interface ReadyWatch {
  /** Resolves with the time (ms since epoch) at which the n-th offer was seen Ready. */
  readonly allReady: Promise<number>;
  close(): void;
}

/** Counts offers whose Ready condition is True, from a list and then a watch of changes. */
async function watchReady(cp: ControlPlane, ns: string, n: number): Promise<ReadyWatch> {
  type Offer = {
    metadata: { name: string; resourceVersion: string };
    status?: { conditions?: { type: string; status: string }[] };
  };
  const isReady = (o: Offer) =>
    o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  const ready = new Set<string>();
  const list = await api(cp, "GET", crPath(ns, "serviceoffers"));
  const listed = list.json<{ metadata: { resourceVersion: string }; items: Offer[] }>();
  for (const o of listed.items) if (isReady(o)) ready.add(o.metadata.name);
  let req: http.ClientRequest | undefined;
  const allReady = new Promise<number>((resolve, reject) => {
    if (ready.size === n) return resolve(Date.now());
    req = https.request(
      `${cp.server}${crPath(ns, "serviceoffers")}?watch=true&resourceVersion=${listed.metadata.resourceVersion}&allowWatchBookmarks=false`,
      { rejectUnauthorized: false, headers: { authorization: `Bearer ${cp.token}` } },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`watch answered ${res.statusCode}`));
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let nl = buffered.indexOf("\n");
          while (nl >= 0) {
            const event = JSON.parse(buffered.slice(0, nl)) as { type: string; object: Offer };
            buffered = buffered.slice(nl + 1);
            nl = buffered.indexOf("\n");
            if (event.type === "ERROR")
              return reject(new Error(`watch error: ${JSON.stringify(event.object)}`));
            if (event.type === "DELETED" || !isReady(event.object)) ready.delete(event.object.metadata.name);
            else ready.add(event.object.metadata.name);
            if (ready.size === n) resolve(Date.now());
          }
        });
        res.on("end", () => reject(new Error("the watch ended before every offer was Ready")));
      },
    );
    req.on("error", reject);
    req.end();
  });
  return { allReady, close: () => req?.destroy() };
}

async function main() {
  const dir = path.join(RUN_DIR, "bench-controller");
  const logDir = path.join(dir, "logs");
  let dist: string | undefined;
  if (process.env.BENCH_RUNTIME !== "tsx") {
    dist = path.join(dir, "dist");
    execFileSync(
      process.execPath,
      [require.resolve("typescript/bin/tsc"), "-p", "controller/tsconfig.build.json", "--outDir", dist],
      { cwd: REPO, stdio: "inherit" },
    );
  }
  const start = runtimeStarter(dist, logDir);
  const cp = await startControlPlane({ dir: path.join(dir, "cluster") });
  const upstream = http.createServer((_req, res) => res.writeHead(200).end("ok"));
  const upstreamPort = await freePort();
  await new Promise<void>((r) => upstream.listen(upstreamPort, "127.0.0.1", r));
  const procs: ManagedProcess[] = [];
  try {
    // Offers are Ready only on a network the gateway's facilitator advertises in /supported.
    const facilitator = await startSupportedOnlyFacilitator({ logDir, networks: ["eip155:84532"] });
    procs.push(facilitator.proc);
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
      const gateway = start(
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
        {
          INTERNAL_PORT: String(internalPort),
          INTERNAL_HOST: "127.0.0.1",
          FACILITATOR_URL: facilitator.url,
        },
      );
      procs.push(gateway);
      await waitForHttp("the gateway", `http://127.0.0.1:${internalPort}/healthz`, gateway);
      const watch = await watchReady(cp, ns, n);
      const started = Date.now();
      const controller = start("controller", "controller", [
        "--kubeconfig",
        cp.kubeconfigPath,
        "--namespace",
        ns,
        "--gateway-internal-url",
        `http://127.0.0.1:${internalPort}`,
        "--port",
        String(controllerPort),
      ]);
      procs.push(controller);
      // When the process answers /healthz it has loaded its code; the rest is lease, list, work.
      let upAt = 0;
      const up = (async () => {
        while (!upAt && controller.child.exitCode === null) {
          try {
            if ((await fetch(`http://127.0.0.1:${controllerPort}/healthz`)).ok) upAt = Date.now();
          } catch {
            // not listening yet
          }
          if (!upAt) await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const timeout = setTimeout(() => watch.close(), 20 * 60_000);
      const readyAt = await watch.allReady;
      clearTimeout(timeout);
      watch.close();
      await up;
      const ready = (readyAt - started) / 1000;
      console.log(
        `N=${String(n).padStart(4)}: all Ready in ${ready.toFixed(2)} s (process up after ${((upAt - started) / 1000).toFixed(2)} s); ${n} plain status writes take ${floor.toFixed(2)} s; ratio ${(ready / floor).toFixed(2)} (goal <= 2 at 1000)`,
      );
      // The same, without the process start (module loading), which does not grow with N.
      const working = (readyAt - upAt) / 1000;
      console.log(
        `        from the process being up: ${working.toFixed(2)} s; ratio ${(working / floor).toFixed(2)}`,
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
