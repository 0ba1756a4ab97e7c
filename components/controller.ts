import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, ENV, PLURALS, PORTS } from "../api/contract";
import { GROUP } from "../api/resources";
import { formerly } from "./naming";
import { RuntimeWorkload } from "./runtimeWorkload";

export interface ControllerArgs {
  namespace: pulumi.Input<string>;
  image: string;
  /** The gateway's internal URL, where it reports the routes it holds. */
  gatewayInternalUrl: pulumi.Input<string>;
  /** The public origin, so offer status shows absolute endpoints. */
  publicBaseUrl?: pulumi.Input<string>;
  /** cloudflared's metrics URL, when the controller follows a quick tunnel (api/contract.ts followsQuickTunnel). */
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
      name,
      {
        namespace: args.namespace,
        component: COMPONENTS.controller,
        image: args.image,
        command: "controller",
        port: PORTS.controllerHealth,
        // Nothing calls the controller: metrics are scraped from the pod (a PodMonitor).
        service: false,
        rules: [
          {
            apiGroups: [GROUP],
            resources: [PLURALS.serviceOffer, PLURALS.agentIdentity, PLURALS.purchaseRequest],
            verbs: ["get", "list", "watch"],
          },
          {
            apiGroups: [GROUP],
            resources: [PLURALS.serviceOffer, PLURALS.agentIdentity, PLURALS.purchaseRequest].map(
              (p) => `${p}/status`,
            ),
            verbs: ["get", "update", "patch"],
          },
          // Only to release the drain finalizer of a deleted offer (api/drain.ts).
          { apiGroups: [GROUP], resources: [PLURALS.serviceOffer], verbs: ["patch"] },
          { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
          { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "create", "update"] },
        ],
        env: [
          { name: ENV.gatewayInternalUrl, value: args.gatewayInternalUrl },
          ...(args.publicBaseUrl ? [{ name: ENV.publicBaseUrl, value: args.publicBaseUrl }] : []),
          ...(args.quickTunnelMetricsUrl
            ? [{ name: ENV.quickTunnelMetricsUrl, value: args.quickTunnelMetricsUrl }]
            : []),
        ],
        formerChildName: formerly(name, "controller", COMPONENTS.controller),
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
