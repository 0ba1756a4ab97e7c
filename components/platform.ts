import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CRD_DEFINITIONS, crdManifest } from "../api/crds";
import { labelsFor } from "./labels";
import { childOf, formerly } from "./naming";

export interface PlatformArgs {
  namespace: string;
}

/** The namespace everything lives in, and the obol.org CRDs (generated from api/). */
export class Platform extends pulumi.ComponentResource {
  readonly namespace: pulumi.Output<string>;
  readonly crds: k8s.apiextensions.v1.CustomResourceDefinition[];

  constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Platform", name, {}, opts);
    const ns = new k8s.core.v1.Namespace(
      name,
      {
        metadata: {
          name: args.namespace,
          labels: { ...labelsFor("obol-stack"), "pod-security.kubernetes.io/enforce": "restricted" },
        },
      },
      childOf(this, name, formerly(name, "platform", "namespace")),
    );
    this.namespace = ns.metadata.name;
    // The CRDs are cluster-scoped and shared by every stack on the cluster (one per namespace):
    // each stack applies the same manifest server-side, and none deletes them, since deleting a
    // CRD deletes every other stack's offers and purchases with it (docs/adr/0004-two-stacks-one-cluster.md).
    this.crds = CRD_DEFINITIONS.map((def) => {
      const manifest = crdManifest(def);
      return new k8s.apiextensions.v1.CustomResourceDefinition(
        `${name}-${def.plural}`,
        {
          metadata: {
            ...manifest.metadata,
            labels: labelsFor("obol-crds"),
            // Stacks of different versions may apply different schemas: the last `up` wins
            // instead of failing on the other stack's field ownership.
            annotations: { "pulumi.com/patchForce": "true" },
          },
          spec: manifest.spec,
        },
        {
          ...childOf(this, `${name}-${def.plural}`, formerly(name, "platform", def.plural)),
          retainOnDelete: true,
        },
      );
    });
    this.registerOutputs({ namespace: this.namespace });
  }
}
