import * as pulumi from "@pulumi/pulumi";
import { RuntimeWorkload } from "./runtimeWorkload";

export const FACILITATOR_PORT = 8090;

export type FacilitatorArgs =
  | { mode: "hosted"; url: string }
  | {
      mode: "self";
      namespace: pulumi.Input<string>;
      image: string;
      signerKey: pulumi.Input<string>;
      rpcUrl?: string;
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
        "facilitator",
        {
          namespace: args.namespace,
          component: "x402-facilitator",
          image: args.image,
          command: "facilitator",
          port: FACILITATOR_PORT,
          service: true,
          // The signer key is a file in a Secret volume, never an env literal.
          secretFiles: { "signer-key": args.signerKey },
          env: [
            { name: "SIGNER_KEY_FILE", value: "/var/run/secrets/obol/signer-key" },
            ...(args.rpcUrl ? [{ name: "RPC_URL", value: args.rpcUrl }] : []),
          ],
        },
        { parent: this },
      );
      this.url = workload.url!;
    }
    this.registerOutputs({ url: this.url });
  }
}
