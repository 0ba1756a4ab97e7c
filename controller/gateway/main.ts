/**
 * `obol-runtime gateway`: the one public process. Watches ServiceOffers and AgentIdentities,
 * serves offers, catalogs and the storefront on PORT, and the internal routes report and
 * /metrics on INTERNAL_PORT (bind it for in-cluster use only; it is never routed through the
 * tunnel). Paid routes go through the x402 gate, which verifies and settles with FACILITATOR_URL;
 * the facilitator's GET /supported decides which offers can be paid at all (facilitatorWatch.ts).
 * FACILITATOR_TOKEN_FILE (a mounted Secret), when set, is presented to the facilitator as a bearer
 * token: the self-run facilitator answers nobody else. CDP_API_KEY_ID_FILE and
 * CDP_API_KEY_SECRET_FILE instead sign each call for Coinbase's facilitator (a CDP API key).
 */
import * as http from "node:http";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { ENV, PLURALS, PORTS } from "../../api/contract";
import { ChannelPayments } from "../payments/channels";
import { channelAuthorizers, facilitatorExtensions, uptoFacilitators } from "../payments/facilitatorSupport";
import { PaymentMetrics } from "../payments/metrics";
import { X402PaymentGate } from "../payments/x402Gate";
import { facilitatorAuthFromEnv } from "../shared/facilitatorAccess";
import {
  type AgentIdentityObject,
  loadKubeConfig,
  resolveNamespace,
  type ServiceOfferObject,
  watchCustomObjects,
} from "../shared/kube";
import { parseUpstreamOverrides } from "../shared/offers";
import type { Command } from "../shared/startup";
import { FacilitatorWatch } from "./facilitatorWatch";
import { OfferLimiter, PayerLimiter } from "./limits";
import { createInternalHandler, createPublicHandler } from "./server";
import { RouteState } from "./state";

const SETTINGS = {
  kubeconfig: {},
  namespace: {},
  port: { env: ENV.port },
  host: { env: "HOST" },
  "internal-port": { env: ENV.internalPort },
  "internal-host": { env: "INTERNAL_HOST" },
  "public-base-url": { env: ENV.publicBaseUrl },
  "upstream-overrides": { env: "UPSTREAM_OVERRIDES" },
  "upstream-timeout-ms": {},
  "facilitator-url": { env: ENV.facilitatorUrl },
  /** Per facilitator call; a settle that runs out is answered settlement_pending, never "not charged". */
  "facilitator-timeout-ms": { env: "FACILITATOR_TIMEOUT_MS" },
  /** How often the facilitator's GET /supported is read (sooner, with backoff, after a failure). */
  "facilitator-supported-interval-ms": { env: "FACILITATOR_SUPPORTED_INTERVAL_MS" },
  /** How long the last /supported answer is used while reads fail, before offers are paused. */
  "facilitator-supported-max-stale-ms": { env: "FACILITATOR_SUPPORTED_MAX_STALE_MS" },
  /** Between two settles of a pending settlement, while it is followed. */
  "pending-retry-ms": { env: "PENDING_RETRY_MS" },
  /** Each replica enforces its share of every offer's limits (docs/adr/0003-ha-gateway.md). */
  replicas: { env: ENV.gatewayReplicas },
  /**
   * Where batch-settlement channel state is kept (a volume that outlives the pod, owned by one
   * replica). Unset: the 402s offer no channels.
   */
  "channel-state-dir": { env: ENV.channelStateDir },
} as const;

function listen(server: http.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

export const command: Command<keyof typeof SETTINGS> = {
  name: "gateway",
  settings: SETTINGS,
  // In-flight requests (streams included) get this long to finish.
  shutdownDeadlineMs: 10_000,
  async start({ settings: s, log }) {
    const facilitatorUrl = s.string("facilitator-url");
    if (!facilitatorUrl) {
      throw new Error(
        `${s.describe("facilitator-url")} must be set: without a facilitator every paid route would fail closed`,
      );
    }
    const kc = loadKubeConfig(s.string("kubeconfig"));
    const namespace = resolveNamespace(s.string("namespace"));
    const port = s.int("port", PORTS.gateway);
    const internalPort = s.int("internal-port", PORTS.gatewayInternal);
    if (internalPort === port)
      throw new Error("--internal-port must differ from --port: internal endpoints are never public");
    const metrics = new PaymentMetrics();
    const supportedIntervalMs = Math.max(100, s.int("facilitator-supported-interval-ms", 60_000));
    // A bearer token (generated for a self-run facilitator, `facilitatorToken` for a hosted one)
    // or a CDP API key (Coinbase's facilitator).
    const auth = await facilitatorAuthFromEnv();
    const facilitatorWatch = new FacilitatorWatch({
      // Its own client: a /supported read is bounded well below a settle's timeout.
      facilitator: new HTTPFacilitatorClient({ url: facilitatorUrl, timeoutMs: 10_000, ...auth }),
      url: facilitatorUrl,
      intervalMs: supportedIntervalMs,
      maxStaleMs: s.int("facilitator-supported-max-stale-ms", Math.max(180_000, 3 * supportedIntervalMs)),
      log,
    });
    const facilitator = new HTTPFacilitatorClient({
      url: facilitatorUrl,
      timeoutMs: s.int("facilitator-timeout-ms", 60_000),
      ...auth,
    });
    const channelStateDir = s.string("channel-state-dir");
    const channels = channelStateDir
      ? new ChannelPayments({
          facilitator,
          stateDir: channelStateDir,
          log,
          onVoucherCheck: (path) => metrics.voucherChecks.inc({ path }),
          onSignatureRecovered: (where, count) => {
            metrics.signaturesRecovered.inc({ where }, count);
            if (where === "worker") metrics.signatureBatches.inc();
          },
        })
      : undefined;
    await channels?.start();
    const gate = new X402PaymentGate({
      facilitatorExtensions: () => facilitatorExtensions(facilitatorWatch.view()),
      uptoFacilitators: () => uptoFacilitators(facilitatorWatch.view()),
      channelAuthorizers: () => channelAuthorizers(facilitatorWatch.view()),
      ...(channels ? { channels } : {}),
      facilitator,
      metrics,
      log,
      pendingRetryMs: s.int("pending-retry-ms", 5_000),
      payerLimiter: new PayerLimiter(undefined, Math.max(1, s.int("replicas", 1))),
    });

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
      parseUpstreamOverrides(s.string("upstream-overrides")),
      facilitatorWatch,
    );
    const options = {
      state,
      gate,
      publicBaseUrl: s.string("public-base-url"),
      upstreamTimeoutMs: s.int("upstream-timeout-ms", 300_000),
      limiter: new OfferLimiter(undefined, Math.max(1, s.int("replicas", 1))),
      log,
      metrics,
    };
    const publicServer = http.createServer(createPublicHandler(options));
    const internalServer = http.createServer(createInternalHandler(options));
    const host = s.string("host") ?? "0.0.0.0";
    const internalHost = s.string("internal-host") ?? "0.0.0.0";
    // Serve knowing what the facilitator supports (or that it could not be read yet).
    await facilitatorWatch.ready();
    await listen(publicServer, port, host);
    await listen(internalServer, internalPort, internalHost);

    return {
      summary: `public on ${host}:${port}, internal on ${internalHost}:${internalPort}, namespace ${namespace}, payment gate "${gate.name}"${channelStateDir ? `, channel state in ${channelStateDir}` : ", no channels (CHANNEL_STATE_DIR unset)"}`,
      async stop() {
        log("gateway: finishing in-flight requests");
        internalServer.close();
        const drained = new Promise<void>((resolve) => publicServer.close(() => resolve()));
        publicServer.closeIdleConnections();
        await drained;
        await Promise.all([offers.stop(), identities.stop()]);
        // Stops following pending settlements; the facilitator still follows their transactions.
        gate.pending.stop();
        // Claims continue from the stored state at the next start.
        await channels?.stop();
        facilitatorWatch.stop();
      },
    };
  },
};
