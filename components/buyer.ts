import * as pulumi from "@pulumi/pulumi";
import { GROUP } from "../api/resources";
import { RuntimeWorkload } from "./runtimeWorkload";

export const BUYER_PORT = 8402;
const LEDGER_DIR = "/var/lib/obol-buyer";

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
      "buyer",
      {
        namespace: args.namespace,
        component: "x402-buyer",
        image: args.image,
        command: "buyer",
        port: BUYER_PORT,
        service: true,
        rules: [
          { apiGroups: [GROUP], resources: ["purchaserequests"], verbs: ["get", "list", "watch"] },
          { apiGroups: [GROUP], resources: ["purchaserequests/status"], verbs: ["get", "update", "patch"] },
        ],
        ...(args.signerKey
          ? {
              secretFiles: { "signer-key": args.signerKey },
              // The spend ledger must outlive the pod, or a restart could re-spend the budget.
              persistentVolume: { mountPath: LEDGER_DIR, size: "1Gi" },
            }
          : {}),
        env: args.signerKey
          ? [
              { name: "SIGNER_KEY_FILE", value: "/var/run/secrets/obol/signer-key" },
              { name: "LEDGER_PATH", value: `${LEDGER_DIR}/ledger.jsonl` },
            ]
          : [],
      },
      { parent: this },
    );
    this.url = workload.url!;
    this.openAiBaseUrl = pulumi.interpolate`${workload.url!}/v1`;
    this.registerOutputs({ url: this.url });
  }
}
