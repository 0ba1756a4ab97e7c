import * as crypto from "node:crypto";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import { K3dCluster } from "../providers/k3dCluster";

export interface ClusterArgs {
  mode: "k3d" | "kubeconfig";
  /** k3d cluster name (k3d mode). */
  name: string;
  servers: number;
  agents: number;
  k3sImage?: string;
  /** The kubeconfig of an existing cluster (kubeconfig mode); a secret. */
  kubeconfig?: pulumi.Input<string>;
}

/** The API server URL of a kubeconfig's current context. */
export function currentServer(kubeconfig: string): string {
  const doc = parseYaml(kubeconfig) as {
    "current-context"?: string;
    contexts?: { name: string; context: { cluster: string } }[];
    clusters?: { name: string; cluster: { server: string } }[];
  };
  const context = doc.contexts?.find((c) => c.name === doc["current-context"]) ?? doc.contexts?.[0];
  const cluster = doc.clusters?.find((c) => c.name === context?.context.cluster) ?? doc.clusters?.[0];
  if (!cluster?.cluster?.server) throw new Error("the kubeconfig has no cluster with a server URL");
  return cluster.cluster.server;
}

/**
 * Where everything runs: a k3d cluster this stack owns, or any existing cluster. Exposes one
 * Kubernetes provider configured for resume: when the cluster is recreated its identifier
 * changes (so every object is recreated on it), and objects on an unreachable cluster leave
 * state on refresh instead of blocking the update.
 */
export class Cluster extends pulumi.ComponentResource {
  readonly provider: k8s.Provider;
  readonly kubeconfig: pulumi.Output<string>;
  readonly clusterIdentifier: pulumi.Output<string>;
  /** The k3d cluster resource (k3d mode): cluster-scoped objects are deleted with it. */
  readonly k3d?: K3dCluster;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Cluster", name, {}, opts);
    if (args.mode === "k3d") {
      this.k3d = new K3dCluster(
        name,
        {
          name: args.name,
          servers: args.servers,
          agents: args.agents,
          ...(args.k3sImage ? { k3sImage: args.k3sImage } : {}),
        },
        { parent: this },
      );
      this.kubeconfig = pulumi.secret(this.k3d.kubeconfig);
      this.clusterIdentifier = pulumi.interpolate`k3d/${this.k3d.name}/${this.k3d.instanceId}`;
    } else {
      if (!args.kubeconfig) throw new Error("kubeconfig mode needs the `kubeconfig` secret");
      this.kubeconfig = pulumi.secret(args.kubeconfig);
      this.clusterIdentifier = pulumi
        .output(args.kubeconfig)
        .apply(
          (kc) =>
            `server/${crypto.createHash("sha256").update(currentServer(kc)).digest("hex").slice(0, 16)}`,
        );
    }
    this.provider = new k8s.Provider(
      name,
      {
        kubeconfig: this.kubeconfig,
        clusterIdentifier: this.clusterIdentifier,
        deleteUnreachable: true,
        enableServerSideApply: true,
      },
      { parent: this },
    );
    this.registerOutputs({ kubeconfig: this.kubeconfig, clusterIdentifier: this.clusterIdentifier });
  }
}
