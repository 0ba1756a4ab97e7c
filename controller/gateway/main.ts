/**
 * `obol-runtime gateway`: the one public process. Watches ServiceOffers and AgentIdentities,
 * serves offers, catalogs and the storefront on PORT, and the internal routes report on
 * INTERNAL_PORT (bind it for in-cluster use only; it is never routed through the tunnel).
 */
import * as http from "node:http";
import { PLURALS, PORTS } from "../../api/contract";
import { intSetting, parseFlags } from "../shared/flags";
import {
  type AgentIdentityObject,
  loadKubeConfig,
  resolveNamespace,
  type ServiceOfferObject,
  watchCustomObjects,
} from "../shared/kube";
import { parseUpstreamOverrides } from "../shared/offers";
import { NotConfiguredPaymentGate, type PaymentGate } from "./paymentGate";
import { createInternalHandler, createPublicHandler, type GatewayOptions } from "./server";
import { RouteState } from "./state";

const FLAGS = [
  "kubeconfig",
  "namespace",
  "port",
  "host",
  "internal-port",
  "internal-host",
  "public-base-url",
  "upstream-overrides",
  "upstream-timeout-ms",
] as const;

function log(msg: string): void {
  console.log(`${new Date().toISOString()} ${msg}`);
}

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Starts the gateway. `gate` is the payment seam: the x402 implementation is passed here; the
 * default answers 402 "payment not configured" and never proxies paid routes.
 */
export async function run(
  argv: string[],
  gate: PaymentGate = new NotConfiguredPaymentGate(),
  metrics?: GatewayOptions["metrics"],
): Promise<void> {
  const f = parseFlags(argv, FLAGS);
  const env = process.env;
  const kc = loadKubeConfig(f.kubeconfig);
  const namespace = resolveNamespace(f.namespace);
  const port = intSetting(f.port ?? env.PORT, PORTS.gateway, "--port");
  const internalPort = intSetting(
    f["internal-port"] ?? env.INTERNAL_PORT,
    PORTS.gatewayInternal,
    "--internal-port",
  );
  if (internalPort === port)
    throw new Error("--internal-port must differ from --port: internal endpoints are never public");

  let version = 0;
  const bump = () => {
    version++;
  };
  const [offers, identities] = await Promise.all([
    watchCustomObjects<ServiceOfferObject>(kc, PLURALS.serviceOffer, namespace, log),
    watchCustomObjects<AgentIdentityObject>(kc, PLURALS.agentIdentity, namespace, log),
  ]);
  for (const cache of [offers, identities]) {
    cache.on("add", bump);
    cache.on("update", bump);
    cache.on("delete", bump);
  }
  const state = new RouteState(
    {
      offers: () => offers.list(),
      identity: (name) => identities.get(name),
      synced: () => offers.synced() && identities.synced(),
      version: () => version,
    },
    parseUpstreamOverrides(f["upstream-overrides"] ?? env.UPSTREAM_OVERRIDES),
  );
  const options = {
    state,
    gate,
    publicBaseUrl: f["public-base-url"] || env.PUBLIC_BASE_URL || undefined,
    upstreamTimeoutMs: intSetting(f["upstream-timeout-ms"], 300_000, "--upstream-timeout-ms"),
    log,
    ...(metrics ? { metrics } : {}),
  };
  const publicServer = http.createServer(createPublicHandler(options));
  const internalServer = http.createServer(createInternalHandler(options));
  const host = f.host || env.HOST || "0.0.0.0";
  const internalHost = f["internal-host"] || env.INTERNAL_HOST || "0.0.0.0";
  await listen(publicServer, port, host);
  await listen(internalServer, internalPort, internalHost);
  log(
    `gateway: public on ${host}:${port}, internal on ${internalHost}:${internalPort}, namespace ${namespace}, payment gate "${gate.name}"`,
  );

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`gateway: stopping (${why}); finishing in-flight requests`);
    const force = setTimeout(() => process.exit(0), 10_000);
    force.unref();
    internalServer.close();
    publicServer.close(() => {
      void Promise.all([offers.stop(), identities.stop()]).finally(() => process.exit(0));
    });
    publicServer.closeIdleConnections();
  };
  // `on`, not `once`: a second SIGTERM (e.g. relayed by a wrapper) must not kill a clean shutdown.
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
