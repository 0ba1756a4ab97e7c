import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, followsQuickTunnel } from "../api/contract";
import { AgentIdentity } from "../components/agentIdentity";
import { Buyer } from "../components/buyer";
import { Cluster } from "../components/cluster";
import { Controller } from "../components/controller";
import { Facilitator } from "../components/facilitator";
import { Gateway } from "../components/gateway";
import { LiteLLM } from "../components/litellm";
import { Monitoring } from "../components/monitoring";
import { Offer } from "../components/offer";
import { Platform } from "../components/platform";
import { Purchase } from "../components/purchase";
import { Tunnel } from "../components/tunnel";
import { AgentRegistration } from "../providers/agentRegistration";
import { GeneratedSecret } from "../providers/generatedSecret";
import { RuntimeImage } from "../providers/runtimeImage";
import { SpendOrigin } from "../providers/spendOrigin";
import { plainConfig, secretConfig } from "./config/load";
import type { SecretKey, StackConfig } from "./config/types";
import { monitoringBeforeDeploy, monitoringOnOwnCluster } from "./monitoring";
import { runtimeBuild, runtimeImageTag } from "./runtimeImage";

/**
 * Everything `pulumi up` declares, from a validated StackConfig. Async only to ask an existing
 * cluster (kubeconfig mode) what it serves before anything is declared.
 */
export async function deployStack(cfg: StackConfig) {
  const monitoringNow =
    cfg.cluster.mode === "kubeconfig"
      ? await monitoringBeforeDeploy(cfg.monitoring.serviceMonitors, plainConfig("kubeconfig"))
      : undefined;
  const has = (key: SecretKey) => cfg.secrets.includes(key);
  const cluster = new Cluster("cluster", {
    mode: cfg.cluster.mode,
    name: cfg.cluster.name,
    servers: cfg.cluster.servers,
    agents: cfg.cluster.agents,
    ...(cfg.cluster.k3sImage ? { k3sImage: cfg.cluster.k3sImage } : {}),
    ...(cfg.cluster.mode === "kubeconfig" ? { kubeconfig: secretConfig("kubeconfig") } : {}),
  });
  // Objects on the cluster need no deletion of their own when the cluster itself goes.
  const onCluster: pulumi.ComponentResourceOptions = {
    providers: { kubernetes: cluster.provider },
    ...(cluster.k3d ? { deletedWith: cluster.k3d } : {}),
  };
  const platform = new Platform("platform", { namespace: cfg.namespace }, onCluster);
  const dependsOn: pulumi.Resource[] = [platform];
  let image = cfg.images.runtime;
  if (cfg.images.buildRuntime && cluster.k3d) {
    // No registry in k3d mode: build the image here and import it into the cluster.
    const built = new RuntimeImage("runtime-image", {
      tag: runtimeImageTag(),
      ...runtimeBuild,
      cluster: cluster.k3d.name,
      clusterInstance: cluster.k3d.instanceId,
    });
    image = runtimeImageTag();
    dependsOn.push(built);
  }
  const inPlatform: pulumi.ComponentResourceOptions = { ...onCluster, dependsOn };
  const namespace = platform.namespace;

  const facilitator = new Facilitator(
    "facilitator",
    cfg.facilitator.mode === "hosted"
      ? {
          mode: "hosted",
          url: cfg.facilitator.url,
          ...(has("facilitatorToken") ? { accessToken: secretConfig("facilitatorToken") } : {}),
          ...(cfg.facilitator.auth === "cdp"
            ? { cdpApiKey: { id: secretConfig("cdpApiKeyId"), secret: secretConfig("cdpApiKeySecret") } }
            : {}),
        }
      : {
          mode: "self",
          namespace,
          image,
          signerKey: secretConfig("facilitatorSignerKey"),
          rpcUrl: cfg.facilitator.rpcUrl,
        },
    inPlatform,
  );
  const gateway = new Gateway(
    "gateway",
    {
      namespace,
      image,
      facilitatorUrl: facilitator.url,
      facilitatorToken: facilitator.accessToken,
      cdpApiKey: facilitator.cdpApiKey,
      replicas: cfg.gateway.replicas,
      channelState: cfg.offers.some((o) => o.spec.schemes?.includes("batch-settlement")),
      ...(cfg.publicBaseUrl ? { publicBaseUrl: cfg.publicBaseUrl } : {}),
    },
    inPlatform,
  );
  const tunnelCommon = { namespace, image: cfg.images.cloudflared, gatewayUrl: gateway.url };
  const tunnel = new Tunnel(
    "tunnel",
    cfg.tunnel.mode === "named"
      ? { mode: "named", hostname: cfg.tunnel.hostname, token: secretConfig("tunnelToken"), ...tunnelCommon }
      : { mode: cfg.tunnel.mode, ...tunnelCommon },
    inPlatform,
  );
  const followQuickTunnel = followsQuickTunnel({
    quickTunnel: cfg.tunnel.mode === "quick",
    publicBaseUrl: cfg.publicBaseUrl,
  });
  const controller = new Controller(
    "controller",
    {
      namespace,
      image,
      gatewayInternalUrl: gateway.internalUrl,
      ...(cfg.publicBaseUrl ? { publicBaseUrl: cfg.publicBaseUrl } : {}),
      ...(followQuickTunnel && tunnel.metricsUrl ? { quickTunnelMetricsUrl: tunnel.metricsUrl } : {}),
    },
    inPlatform,
  );
  const buyer = new Buyer(
    "buyer",
    { namespace, image, ...(has("buyerSignerKey") ? { signerKey: secretConfig("buyerSignerKey") } : {}) },
    inPlatform,
  );

  const masterKey = new GeneratedSecret("litellm-master-key", { prefix: "sk-", bytes: 24 });
  const secretEnv: Record<string, pulumi.Output<string>> = {};
  const models = cfg.litellm.models.map((m) => {
    if (!m.apiKeySecret)
      return { name: m.name, model: m.model, ...(m.apiBase ? { apiBase: m.apiBase } : {}) };
    const env = `MODEL_KEY_${m.apiKeySecret.replace(/[^A-Za-z0-9]/g, "_").toUpperCase()}`;
    secretEnv[env] = secretConfig(m.apiKeySecret);
    return { name: m.name, model: m.model, apiKeyEnv: env, ...(m.apiBase ? { apiBase: m.apiBase } : {}) };
  });
  const litellm = new LiteLLM(
    "litellm",
    {
      namespace,
      image: cfg.images.litellm,
      models,
      masterKey: masterKey.value,
      secretEnv,
      buyerBaseUrl: buyer.openAiBaseUrl,
      paidModels: cfg.purchases.map((p) => p.model),
    },
    inPlatform,
  );

  const publicUrl = cfg.publicBaseUrl ? pulumi.output(cfg.publicBaseUrl) : tunnel.publicUrl;

  const offers: Record<string, pulumi.Output<string>> = {};
  // An offer is deleted before the controller and the gateway (on destroy, or when both go):
  // they drain it and release its finalizer (api/drain.ts), so they must outlive it.
  const offerOpts: pulumi.ComponentResourceOptions = {
    ...inPlatform,
    dependsOn: [...dependsOn, controller, gateway],
  };
  for (const offer of cfg.offers) {
    offers[offer.name] = new Offer(
      `offer-${offer.name}`,
      { namespace, name: offer.name, spec: offer.spec, publicBaseUrl: publicUrl },
      offerOpts,
    ).endpoint;
  }

  for (const purchase of cfg.purchases) {
    // Like registrations, the origin lives on chain and in state, not on the cluster: a lost
    // cluster keeps it, so the recreated purchase still counts what was spent before.
    const origin = purchase.payment.rpcUrl
      ? new SpendOrigin(`spend-origin-${purchase.name}`, {
          network: purchase.payment.network,
          rpcUrl: purchase.payment.rpcUrl,
        })
      : undefined;
    new Purchase(
      `purchase-${purchase.name}`,
      { namespace, purchase, ...(origin ? { countFromBlock: origin.block } : {}) },
      inPlatform,
    );
  }

  // Scrape objects only exist when the cluster serves the Prometheus Operator's CRDs, which only
  // the cluster can say: known before this point on an existing cluster, else once it exists.
  const monitoringOn =
    monitoringNow === undefined
      ? monitoringOnOwnCluster(cfg.monitoring.serviceMonitors, cluster.kubeconfig)
      : pulumi.output(monitoringNow);
  const monitoring = monitoringOn.apply((on) =>
    on
      ? pulumi.all(
          new Monitoring(
            "monitoring",
            {
              namespace,
              components: [
                COMPONENTS.gateway,
                COMPONENTS.controller,
                COMPONENTS.buyer,
                // A hosted facilitator runs elsewhere; it has no metrics here.
                ...(cfg.facilitator.mode === "self" ? [COMPONENTS.facilitator] : []),
              ],
            },
            inPlatform,
          ).scrapeObjects,
        )
      : [],
  );

  // ERC-8004: one registration per chain the offers use. They live on-chain, not on the
  // cluster, so they are neither parented to it nor deleted with it: a lost cluster never
  // re-mints, and only removing identity.register (or a chain) tombstones an agent.
  const onChain = cfg.identity.registration;
  const registrations = onChain
    ? onChain.chains.map((chain) => {
        const registration = new AgentRegistration(`agent-${chain.network.replace(":", "-")}`, {
          network: chain.network,
          registry: chain.registry,
          rpcUrl: chain.rpcUrl,
          agentURI: onChain.agentURI,
          signerKey: secretConfig("identitySignerKey"),
          ...(chain.adoptAgentId !== undefined ? { adoptAgentId: chain.adoptAgentId } : {}),
        });
        return pulumi
          .all([registration.agentId, registration.registry])
          .apply(([agentId, registry]) => ({ network: chain.network, agentId, registry }));
      })
    : [];

  new AgentIdentity(
    "identity",
    {
      namespace,
      name: cfg.identity.name,
      description: cfg.identity.description,
      ...(cfg.identity.image ? { image: cfg.identity.image } : {}),
      registrations,
    },
    inPlatform,
  );

  return {
    publicUrl,
    agentIds: pulumi
      .all(registrations)
      .apply((rs) => Object.fromEntries(rs.map((r) => [r.network, r.agentId]))),
    offers,
    gatewayService: gateway.url,
    liteLLMService: litellm.url,
    namespace,
    monitoring,
  };
}
