import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { KINDS } from "../api/contract";
import { API_VERSION } from "../api/resources";
import type { PurchaseConfig } from "../program/config/types";
import { labelsFor } from "./labels";
import { childOf, formerly } from "./naming";

export interface PurchaseArgs {
  namespace: pulumi.Input<string>;
  purchase: PurchaseConfig;
  /** The block the purchase began at (providers/spendOrigin.ts), from which lost spend is recovered. */
  countFromBlock?: pulumi.Input<string>;
}

/** One PurchaseRequest: what to buy from which seller, and the most to spend on it. */
export class Purchase extends pulumi.ComponentResource {
  constructor(name: string, args: PurchaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Purchase", name, {}, opts);
    const { name: purchaseName, ...config } = args.purchase;
    const spec = args.countFromBlock
      ? pulumi
          .output(args.countFromBlock)
          .apply((block) => ({ ...config, budget: { ...config.budget, countFromBlock: block } }))
      : config;
    new k8s.apiextensions.CustomResource(
      name,
      {
        apiVersion: API_VERSION,
        kind: KINDS.purchaseRequest.kind,
        metadata: {
          namespace: args.namespace,
          name: purchaseName,
          labels: labelsFor("purchase", purchaseName),
        },
        spec,
      },
      // The program names purchases `purchase-<name>`; their child used to be called `<name>`.
      childOf(this, name, formerly(name, `purchase-${purchaseName}`, purchaseName)),
    );
    this.registerOutputs({});
  }
}
