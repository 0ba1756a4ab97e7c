/**
 * `obol-runtime controller`: the status reconciler. Holds a Lease so one replica reconciles;
 * serves /healthz and /readyz; on shutdown stops work and releases the lease.
 */
import * as http from "node:http";
import * as os from "node:os";
import { ENV, followsQuickTunnel, PORTS } from "../../api/contract";
import { errorText, loadKubeConfig, resolveNamespace } from "../shared/kube";
import { serveMetrics } from "../shared/metrics";
import { parseUpstreamOverrides } from "../shared/offers";
import type { Command } from "../shared/startup";
import { Controller } from "./controller";
import { LeaderElector } from "./leader";
import { ControllerMetrics } from "./metrics";
import { QuickTunnelWatch } from "./quickTunnel";

const SETTINGS = {
  kubeconfig: {},
  namespace: {},
  "gateway-internal-url": {},
  "public-base-url": { env: ENV.publicBaseUrl },
  "quick-tunnel-metrics-url": { env: ENV.quickTunnelMetricsUrl },
  "quick-tunnel-poll-ms": {},
  "upstream-overrides": { env: "UPSTREAM_OVERRIDES" },
  port: { env: ENV.port },
  "probe-interval-ms": { env: "PROBE_INTERVAL_MS" },
  "probe-timeout-ms": { env: "PROBE_TIMEOUT_MS" },
  "probe-cache-ms": { env: "PROBE_CACHE_MS" },
  concurrency: { env: "CONCURRENCY" },
  "max-backoff-ms": { env: "MAX_BACKOFF_MS" },
  "purchase-probe-interval-ms": {},
  "lease-name": {},
  "lease-duration-seconds": {},
  "lease-retry-ms": {},
  identity: {},
} as const;

/**
 * The gateway's internal port: --gateway-internal-url, else $GATEWAY_INTERNAL_URL, else
 * $GATEWAY_URL with the port replaced by the gateway's internal port (PORTS.gatewayInternal).
 */
export function gatewayInternalUrl(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const explicit = flag || env[ENV.gatewayInternalUrl];
  if (explicit) return explicit;
  const gateway = env[ENV.gatewayUrl];
  if (gateway) {
    const url = new URL(gateway);
    url.port = String(PORTS.gatewayInternal);
    return url.toString().replace(/\/+$/, "");
  }
  return `http://127.0.0.1:${PORTS.gatewayInternal}`;
}

export const command: Command<keyof typeof SETTINGS> = {
  name: "controller",
  settings: SETTINGS,
  shutdownDeadlineMs: 8_000,
  async start({ settings: s, log, signal, shutdown }) {
    const env = process.env;
    const kc = loadKubeConfig(s.string("kubeconfig"));
    const namespace = resolveNamespace(s.string("namespace"));
    const port = s.int("port", PORTS.controllerHealth);
    const identity = s.string("identity") ?? `${env.POD_NAME || os.hostname()}-${process.pid}`;
    const publicBaseUrl = s.string("public-base-url");

    const metrics = new ControllerMetrics();
    const controller = new Controller({
      metrics,
      kc,
      namespace,
      gatewayInternalUrl: gatewayInternalUrl(s.string("gateway-internal-url"), env),
      publicBaseUrl,
      upstreamOverrides: parseUpstreamOverrides(s.string("upstream-overrides")),
      probeIntervalMs: s.int("probe-interval-ms", 15_000),
      probeTimeoutMs: s.int("probe-timeout-ms", 2_000),
      probeCacheTtlMs: s.int("probe-cache-ms", 2_000),
      concurrency: Math.max(1, s.int("concurrency", 16)),
      maxBackoffMs: s.int("max-backoff-ms", 30_000),
      purchaseProbeIntervalMs: s.int("purchase-probe-interval-ms", 300_000),
      log,
    });
    // With a quick tunnel and no configured origin, follow the URL cloudflared reports.
    const quickTunnelMetricsUrl = s.string("quick-tunnel-metrics-url");
    const quickTunnel =
      quickTunnelMetricsUrl && followsQuickTunnel({ quickTunnel: true, publicBaseUrl })
        ? new QuickTunnelWatch({
            metricsUrl: quickTunnelMetricsUrl,
            searchIntervalMs: 2_000,
            followIntervalMs: s.int("quick-tunnel-poll-ms", 30_000),
            timeoutMs: 2_000,
            onUrl: (url) => controller.setPublicBaseUrl(url),
            log,
          })
        : undefined;
    const elector = new LeaderElector(kc, {
      namespace,
      leaseName: s.string("lease-name") ?? "obol-controller",
      identity,
      leaseDurationSeconds: s.int("lease-duration-seconds", 15),
      retryMs: s.int("lease-retry-ms", 2_000),
      log,
    });

    let reconciling = false;
    const server = http.createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (path === "/metrics" && req.method === "GET") {
        serveMetrics(res, metrics);
      } else if (path === "/readyz") {
        // A standby replica is ready too: it is healthy and waiting for the lease.
        const ok = !reconciling || controller.synced();
        res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "syncing\n");
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, resolve);
    });
    quickTunnel?.start();

    // Lease, then reconciling, in the background. Shutdown waits for both, so a lease written in
    // the same moment as SIGTERM is handed back rather than left to expire.
    const acquiring = elector.acquire(signal);
    const leading = acquiring.then(async (won) => {
      if (!won || signal.aborted) return;
      elector.keepRenewing((why) => shutdown(1, `lost leadership: ${why}`));
      reconciling = true;
      await controller.start();
    });
    leading.catch((err) => shutdown(1, `cannot start reconciling: ${errorText(err)}`));

    return {
      summary: `${identity}: health on :${port}, namespace ${namespace}`,
      async stop() {
        quickTunnel?.stop();
        await acquiring.catch(() => false);
        await leading.catch(() => undefined);
        // In-flight reconciles finish (each is bounded by the probe timeout); no new ones start.
        await controller
          .stop()
          .catch((err) => log(`controller: stopping the work queue failed: ${errorText(err)}`));
        await elector.release();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
};
