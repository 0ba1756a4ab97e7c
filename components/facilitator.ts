import * as pulumi from "@pulumi/pulumi";
import { COMPONENTS, ENV, PORTS } from "../api/contract";
import { GeneratedSecret } from "../providers/generatedSecret";
import { formerly } from "./naming";
import { RuntimeWorkload } from "./runtimeWorkload";

export type FacilitatorArgs =
  | {
      mode: "hosted";
      url: string;
      /** A bearer token the hosted facilitator requires, if any (a Pulumi secret). */
      accessToken?: pulumi.Input<string>;
      /** A Coinbase CDP API key, for Coinbase's facilitator: each call is signed with it (secrets). */
      cdpApiKey?: CdpApiKey;
    }
  | {
      mode: "self";
      namespace: pulumi.Input<string>;
      image: string;
      signerKey: pulumi.Input<string>;
      /** The chain it settles on; required (there is no RPC endpoint that suits everyone). */
      rpcUrl: string;
    };

/** A Coinbase CDP API key: its id and its secret (an EC key in PKCS#8 PEM, or Ed25519 in base64). */
export interface CdpApiKey {
  id: pulumi.Input<string>;
  secret: pulumi.Input<string>;
}

/**
 * The x402 facilitator the gateway verifies and settles with: a hosted URL, or self-run. A
 * self-run one answers /verify and /settle only for callers presenting `accessToken` (a generated
 * secret the gateway is given), so other workloads in the cluster cannot have it submit
 * settlements or sign channel refunds with its key.
 */
export class Facilitator extends pulumi.ComponentResource {
  readonly url: pulumi.Output<string>;
  /** What the gateway presents as a bearer token: generated for a self-run one, configured for a hosted one. */
  readonly accessToken: pulumi.Output<string> | undefined;
  /** The CDP API key the gateway signs calls to Coinbase's facilitator with (hosted, `auth: cdp`). */
  readonly cdpApiKey: { id: pulumi.Output<string>; secret: pulumi.Output<string> } | undefined;

  constructor(name: string, args: FacilitatorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Facilitator", name, {}, opts);
    if (args.mode === "hosted") {
      this.url = pulumi.output(args.url);
      this.accessToken = args.accessToken === undefined ? undefined : pulumi.secret(args.accessToken);
      this.cdpApiKey = args.cdpApiKey && {
        id: pulumi.secret(args.cdpApiKey.id),
        secret: pulumi.secret(args.cdpApiKey.secret),
      };
    } else {
      this.cdpApiKey = undefined;
      const token = new GeneratedSecret(`${name}-access-token`, { prefix: "", bytes: 32 }, { parent: this });
      const workload = new RuntimeWorkload(
        name,
        {
          namespace: args.namespace,
          component: COMPONENTS.facilitator,
          image: args.image,
          command: "facilitator",
          port: PORTS.facilitator,
          service: true,
          secrets: { signerKey: args.signerKey, facilitatorToken: token.value },
          env: [{ name: ENV.rpcUrl, value: args.rpcUrl }],
          formerChildName: formerly(name, "facilitator", COMPONENTS.facilitator),
        },
        { parent: this },
      );
      this.url = workload.url;
      this.accessToken = token.value;
    }
    this.registerOutputs({ url: this.url, accessToken: this.accessToken, cdpApiKey: this.cdpApiKey });
  }
}
