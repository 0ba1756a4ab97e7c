import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, ENV, PLURALS, PORTS } from "../api/contract";
import { GROUP } from "../api/resources";
import { formerly } from "./naming";
import { RuntimeWorkload } from "./runtimeWorkload";

export interface GatewayArgs {
  namespace: pulumi.Input<string>;
  image: string;
  facilitatorUrl: pulumi.Input<string>;
  /** The facilitator's access token (Facilitator.accessToken), a mounted Secret: sent as a bearer token. */
  facilitatorToken?: pulumi.Input<string> | undefined;
  /** A CDP API key (Facilitator.cdpApiKey), mounted Secrets: each facilitator call is signed with it. */
  cdpApiKey?: { id: pulumi.Input<string>; secret: pulumi.Input<string> } | undefined;
  /** The public origin, used in catalogs and 402 resource URLs when known. */
  publicBaseUrl?: pulumi.Input<string>;
  /**
   * Replicas (default 1). Two or more get a PodDisruptionBudget and spread over nodes; each
   * enforces 1/replicas of every offer's limits (docs/adr/0003-ha-gateway.md).
   */
  replicas?: number;
  /**
   * Offers take batch-settlement channels: their state (the latest voucher and claimed amounts
   * per channel) goes on a PersistentVolume, which needs a single replica (default false).
   */
  channelState?: boolean;
}

/** Where the gateway's channel-state volume is mounted. */
const CHANNEL_STATE_DIR = "/var/lib/obol/channels";

/**
 * The x402 gateway: the one public process. It watches ServiceOffers and AgentIdentities
 * (read-only) and serves offers, catalogs and the registration document itself.
 */
export class Gateway extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;
  readonly internalUrl: pulumi.Output<string>;
  readonly serviceName: pulumi.Output<string>;

  constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Gateway", name, {}, opts);
    const workload = new RuntimeWorkload(
      name,
      {
        namespace: args.namespace,
        component: COMPONENTS.gateway,
        image: args.image,
        command: "gateway",
        port: PORTS.gateway,
        // Route reports for the controller and /metrics: in-cluster only, never behind the tunnel.
        internalPort: PORTS.gatewayInternal,
        service: true,
        replicas: args.replicas ?? 1,
        highlyAvailable: (args.replicas ?? 1) >= 2,
        secrets: {
          ...(args.facilitatorToken ? { facilitatorToken: args.facilitatorToken } : {}),
          ...(args.cdpApiKey
            ? { cdpApiKeyId: args.cdpApiKey.id, cdpApiKeySecret: args.cdpApiKey.secret }
            : {}),
        },
        ...(args.channelState ? { persistentVolume: { mountPath: CHANNEL_STATE_DIR, size: "1Gi" } } : {}),
        rules: [
          {
            apiGroups: [GROUP],
            resources: [PLURALS.serviceOffer, PLURALS.agentIdentity],
            verbs: ["get", "list", "watch"],
          },
        ],
        env: [
          { name: ENV.facilitatorUrl, value: args.facilitatorUrl },
          { name: ENV.gatewayReplicas, value: String(args.replicas ?? 1) },
          ...(args.publicBaseUrl ? [{ name: ENV.publicBaseUrl, value: args.publicBaseUrl }] : []),
          ...(args.channelState ? [{ name: ENV.channelStateDir, value: CHANNEL_STATE_DIR }] : []),
        ],
        formerChildName: formerly(name, "gateway", COMPONENTS.gateway),
      },
      { parent: this },
    );
    this.url = workload.url;
    this.internalUrl = workload.internalUrl;
    this.serviceName = workload.serviceName;
    this.registerOutputs({ url: this.url, internalUrl: this.internalUrl, serviceName: this.serviceName });
  }
}
