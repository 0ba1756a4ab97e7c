import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { KINDS } from "../api/contract";
import { API_VERSION, type ServiceOfferSpec } from "../api/resources";
import { labelsFor } from "./labels";
import { childOf, formerly } from "./naming";

export interface OfferArgs {
  namespace: pulumi.Input<string>;
  name: string;
  spec: ServiceOfferSpec;
  /** The public origin, to report the offer's full endpoint. */
  publicBaseUrl?: pulumi.Input<string | undefined>;
}

/**
 * One ServiceOffer custom resource: what is sold, where it runs, and its price. The controller
 * puts its drain finalizer on it, so deleting it waits for the drain (spec.drainSeconds after the
 * deletion, or after spec.endsAt if that came first; api/drain.ts).
 */
export class Offer extends pulumi.ComponentResource {
  readonly endpoint: pulumi.Output<string>;

  constructor(name: string, args: OfferArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Offer", name, {}, opts);
    new k8s.apiextensions.CustomResource(
      name,
      {
        apiVersion: API_VERSION,
        kind: KINDS.serviceOffer.kind,
        metadata: {
          namespace: args.namespace,
          name: args.name,
          labels: labelsFor("offer", args.name),
        },
        spec: args.spec,
      },
      // The program names offers `offer-<name>`; their child used to be called `<name>`.
      childOf(this, name, formerly(name, `offer-${args.name}`, args.name)),
    );
    this.endpoint = pulumi
      .output(args.publicBaseUrl)
      .apply((base) => (base ? `${base}${args.spec.path}` : args.spec.path));
    this.registerOutputs({ endpoint: this.endpoint });
  }
}
