/**
 * `obol-runtime controller`: the status reconciler. Holds a Lease so one replica reconciles;
 * serves /healthz and /readyz; shuts down cleanly on SIGTERM (stops work, releases the lease).
 */
import * as http from "node:http";
import * as os from "node:os";
import { followsQuickTunnel, PORTS } from "../../api/contract";
import { intSetting, parseFlags } from "../shared/flags";
import { errorText, loadKubeConfig, resolveNamespace } from "../shared/kube";
import { parseUpstreamOverrides } from "../shared/offers";
import { Controller } from "./controller";
import { LeaderElector } from "./leader";
import { QuickTunnelWatch } from "./quickTunnel";

const FLAGS = [
  "kubeconfig",
  "namespace",
  "gateway-internal-url",
  "public-base-url",
  "quick-tunnel-metrics-url",
  "quick-tunnel-poll-ms",
  "upstream-overrides",
  "port",
  "probe-interval-ms",
  "probe-timeout-ms",
  "probe-cache-ms",
  "concurrency",
  "max-backoff-ms",
  "purchase-probe-interval-ms",
  "lease-name",
  "lease-duration-seconds",
  "lease-retry-ms",
  "identity",
] as const;

/**
 * The gateway's internal port: --gateway-internal-url, else $GATEWAY_INTERNAL_URL, else
 * $GATEWAY_URL with the port replaced by the gateway's internal port (PORTS.gatewayInternal).
 */
export function gatewayInternalUrl(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const explicit = flag || env.GATEWAY_INTERNAL_URL;
  if (explicit) return explicit;
  if (env.GATEWAY_URL) {
    const url = new URL(env.GATEWAY_URL);
    url.port = String(PORTS.gatewayInternal);
    return url.toString().replace(/\/+$/, "");
  }
  return `http://127.0.0.1:${PORTS.gatewayInternal}`;
}

function log(msg: string): void {
  console.log(`${new Date().toISOString()} ${msg}`);
}

/** How long a shutdown may take before the process exits anyway (a Pod gets 30 s by default). */
export const SHUTDOWN_DEADLINE_MS = 8_000;

export async function run(argv: string[]): Promise<void> {
  // Signals are handled before anything else: a SIGTERM while the controller is still starting
  // or waiting for the lease must end it cleanly (exit 0), like one that arrives later.
  const shutdown = new AbortController();
  let stopping: Promise<void> | undefined;
  let teardown: (() => Promise<void>) | undefined;
  const stop = (code: number, why: string): Promise<void> => {
    // Later signals (a supervisor that repeats SIGTERM) join the shutdown already under way.
    stopping ??= (async () => {
      log(`controller: stopping (${why})`);
      shutdown.abort();
      setTimeout(() => {
        log(`controller: shutdown did not finish within ${SHUTDOWN_DEADLINE_MS} ms; exiting`);
        process.exit(code || 1);
      }, SHUTDOWN_DEADLINE_MS).unref();
      await teardown?.().catch((err) => log(`controller: shutdown failed: ${errorText(err)}`));
      process.exit(code);
    })();
    return stopping;
  };
  process.on("SIGTERM", () => void stop(0, "SIGTERM"));
  process.on("SIGINT", () => void stop(0, "SIGINT"));

  const f = parseFlags(argv, FLAGS);
  const env = process.env;
  const kc = loadKubeConfig(f.kubeconfig);
  const namespace = resolveNamespace(f.namespace);
  const port = intSetting(f.port ?? env.PORT, PORTS.controllerHealth, "--port");
  const identity = f.identity || `${env.POD_NAME || os.hostname()}-${process.pid}`;

  const controller = new Controller({
    kc,
    namespace,
    gatewayInternalUrl: gatewayInternalUrl(f["gateway-internal-url"], env),
    publicBaseUrl: f["public-base-url"] || env.PUBLIC_BASE_URL || undefined,
    upstreamOverrides: parseUpstreamOverrides(f["upstream-overrides"] ?? env.UPSTREAM_OVERRIDES),
    probeIntervalMs: intSetting(
      f["probe-interval-ms"] ?? env.PROBE_INTERVAL_MS,
      15_000,
      "--probe-interval-ms",
    ),
    probeTimeoutMs: intSetting(f["probe-timeout-ms"] ?? env.PROBE_TIMEOUT_MS, 2_000, "--probe-timeout-ms"),
    probeCacheTtlMs: intSetting(f["probe-cache-ms"] ?? env.PROBE_CACHE_MS, 2_000, "--probe-cache-ms"),
    concurrency: Math.max(1, intSetting(f.concurrency ?? env.CONCURRENCY, 16, "--concurrency")),
    maxBackoffMs: intSetting(f["max-backoff-ms"] ?? env.MAX_BACKOFF_MS, 30_000, "--max-backoff-ms"),
    purchaseProbeIntervalMs: intSetting(
      f["purchase-probe-interval-ms"],
      300_000,
      "--purchase-probe-interval-ms",
    ),
    log,
  });
  // With a quick tunnel and no configured origin, follow the URL cloudflared reports.
  const publicBaseUrl = f["public-base-url"] || env.PUBLIC_BASE_URL;
  const quickTunnelMetricsUrl = f["quick-tunnel-metrics-url"] || env.QUICK_TUNNEL_METRICS_URL;
  const quickTunnel =
    quickTunnelMetricsUrl && followsQuickTunnel({ quickTunnel: true, publicBaseUrl })
      ? new QuickTunnelWatch({
          metricsUrl: quickTunnelMetricsUrl,
          searchIntervalMs: 2_000,
          followIntervalMs: intSetting(f["quick-tunnel-poll-ms"], 30_000, "--quick-tunnel-poll-ms"),
          timeoutMs: 2_000,
          onUrl: (url) => controller.setPublicBaseUrl(url),
          log,
        })
      : undefined;
  quickTunnel?.start();
  const elector = new LeaderElector(kc, {
    namespace,
    leaseName: f["lease-name"] || "obol-controller",
    identity,
    leaseDurationSeconds: intSetting(f["lease-duration-seconds"], 15, "--lease-duration-seconds"),
    retryMs: intSetting(f["lease-retry-ms"], 2_000, "--lease-retry-ms"),
    log,
  });

  let started = false;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      // A standby replica is ready too: it is healthy and waiting for the lease.
      const ok = !started || controller.synced();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "syncing\n");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });

  // The acquisition (and start) in flight: shutdown waits for it, so a lease written in the
  // same moment as SIGTERM is handed back rather than left to expire.
  let acquiring: Promise<boolean> = Promise.resolve(false);
  let starting: Promise<void> = Promise.resolve();
  teardown = async () => {
    quickTunnel?.stop();
    await acquiring.catch(() => false);
    await starting.catch(() => undefined);
    // In-flight reconciles finish (each is bounded by the probe timeout); no new ones start.
    await controller
      .stop()
      .catch((err) => log(`controller: stopping the work queue failed: ${errorText(err)}`));
    await elector.release();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, resolve);
  });
  log(`controller ${identity}: health on :${port}, namespace ${namespace}`);

  acquiring = elector.acquire(shutdown.signal);
  if (!(await acquiring) || shutdown.signal.aborted) return;
  elector.keepRenewing((why) => void stop(1, `lost leadership: ${why}`));
  started = true;
  starting = controller.start();
  await starting;
}
