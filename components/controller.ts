import * as pulumi from "@pulumi/pulumi";
import { GROUP } from "../api/resources";
import { RuntimeWorkload } from "./runtimeWorkload";

export interface ControllerArgs {
  namespace: pulumi.Input<string>;
  image: string;
  /** The gateway's internal URL, where it reports the routes it holds. */
  gatewayInternalUrl: pulumi.Input<string>;
  /** The public origin, so offer status shows absolute endpoints. */
  publicBaseUrl?: pulumi.Input<string>;
  /** Without a public origin: cloudflared's metrics URL, to follow a quick tunnel's random URL. */
  quickTunnelMetricsUrl?: pulumi.Input<string>;
}

/**
 * The runtime controller: reconciles offer, identity and purchase status. Namespaced RBAC only;
 * one active replica through a Lease.
 */
export class Controller extends pulumi.ComponentResource {
  constructor(name: string, args: ControllerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Controller", name, {}, opts);
    new RuntimeWorkload(
      "controller",
      {
        namespace: args.namespace,
        component: "obol-controller",
        image: args.image,
        command: "controller",
        port: 8081,
        rules: [
          {
            apiGroups: [GROUP],
            resources: ["serviceoffers", "agentidentities", "purchaserequests"],
            verbs: ["get", "list", "watch"],
          },
          {
            apiGroups: [GROUP],
            resources: ["serviceoffers/status", "agentidentities/status", "purchaserequests/status"],
            verbs: ["get", "update", "patch"],
          },
          { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
          { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
        ],
        env: [
          { name: "GATEWAY_INTERNAL_URL", value: args.gatewayInternalUrl },
          ...(args.publicBaseUrl ? [{ name: "PUBLIC_BASE_URL", value: args.publicBaseUrl }] : []),
          ...(args.quickTunnelMetricsUrl && !args.publicBaseUrl
            ? [{ name: "QUICK_TUNNEL_METRICS_URL", value: args.quickTunnelMetricsUrl }]
            : []),
        ],
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
