import * as pulumi from "@pulumi/pulumi";
import { BUYER_LEDGER_DIR, BUYER_LEDGER_PATH, COMPONENTS, ENV, PLURALS, PORTS } from "../api/contract";
import { GROUP } from "../api/resources";
import { formerly } from "./naming";
import { RuntimeWorkload } from "./runtimeWorkload";

export interface BuyerArgs {
  namespace: pulumi.Input<string>;
  image: string;
  /** The wallet key that pays sellers; absent when the stack buys nothing. */
  signerKey?: pulumi.Input<string>;
}

/** The buyer proxy: the OpenAI-compatible upstream behind LiteLLM's `paid/*` route. */
export class Buyer extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;
  /** What LiteLLM's paid/* route points at (OpenAI-compatible bases end in /v1). */
  readonly openAiBaseUrl: pulumi.Output<string>;

  constructor(name: string, args: BuyerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Buyer", name, {}, opts);
    const workload = new RuntimeWorkload(
      name,
      {
        namespace: args.namespace,
        component: COMPONENTS.buyer,
        image: args.image,
        command: "buyer",
        port: PORTS.buyer,
        service: true,
        rules: [
          { apiGroups: [GROUP], resources: [PLURALS.purchaseRequest], verbs: ["get", "list", "watch"] },
          {
            apiGroups: [GROUP],
            resources: [`${PLURALS.purchaseRequest}/status`],
            verbs: ["get", "update", "patch"],
          },
        ],
        ...(args.signerKey
          ? {
              secrets: { signerKey: args.signerKey },
              // The spend ledger must outlive the pod, or a restart could re-spend the budget.
              persistentVolume: { mountPath: BUYER_LEDGER_DIR, size: "1Gi" },
            }
          : {}),
        env: args.signerKey ? [{ name: ENV.ledgerPath, value: BUYER_LEDGER_PATH }] : [],
        formerChildName: formerly(name, "buyer", COMPONENTS.buyer),
      },
      { parent: this },
    );
    this.url = workload.url;
    this.openAiBaseUrl = pulumi.interpolate`${workload.url}/v1`;
    this.registerOutputs({ url: this.url, openAiBaseUrl: this.openAiBaseUrl });
  }
}
