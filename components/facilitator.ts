import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, ENV, PORTS } from "../api/contract";
import { formerly } from "./naming";
import { RuntimeWorkload } from "./runtimeWorkload";

export type FacilitatorArgs =
  | { mode: "hosted"; url: string }
  | {
      mode: "self";
      namespace: pulumi.Input<string>;
      image: string;
      signerKey: pulumi.Input<string>;
      /** The chain it settles on; required (there is no RPC endpoint that suits everyone). */
      rpcUrl: string;
    };

/** The x402 facilitator the gateway verifies and settles with: a hosted URL, or self-run. */
export class Facilitator extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: FacilitatorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Facilitator", name, {}, opts);
    if (args.mode === "hosted") {
      this.url = pulumi.output(args.url);
    } else {
      const workload = new RuntimeWorkload(
        name,
        {
          namespace: args.namespace,
          component: COMPONENTS.facilitator,
          image: args.image,
          command: "facilitator",
          port: PORTS.facilitator,
          service: true,
          secrets: { signerKey: args.signerKey },
          env: [{ name: ENV.rpcUrl, value: args.rpcUrl }],
          formerChildName: formerly(name, "facilitator", COMPONENTS.facilitator),
        },
        { parent: this },
      );
      this.url = workload.url;
    }
    this.registerOutputs({ url: this.url });
  }
}
