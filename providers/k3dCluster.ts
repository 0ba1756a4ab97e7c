import * as pulumi from "@pulumi/pulumi";
import {
  type K3dClusterSpec,
  k3dClusterState,
  k3dCreateArgs,
  k3dDeleteArgs,
  k3dKubeconfigArgs,
  k3dListArgs,
  k3dStartArgs,
} from "./k3dArgs";

/**
 * A k3d cluster as a Pulumi resource. Unlike a command resource it has a `read`: a refresh
 * notices a cluster deleted out of band (and drops it from state so the next `up` recreates
 * it) and tells a stopped cluster (started again on `up`) from a deleted one. Its kubeconfig is
 * a secret output, and `instanceId` changes whenever the cluster is recreated, which is what
 * the Kubernetes provider's clusterIdentifier follows.
 */
export interface K3dClusterInputs {
  name: pulumi.Input<string>;
  servers: pulumi.Input<number>;
  agents: pulumi.Input<number>;
  k3sImage?: pulumi.Input<string>;
}

interface State extends K3dClusterSpec {
  kubeconfig: string;
  instanceId: string;
  state: "running" | "stopped";
}

function k3d(args: string[]): string {
  // Required inside each method: the provider runs in a separate process from a serialized closure.
  const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
  try {
    return execFileSync("k3d", args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; status?: number };
    if (e.code === "ENOENT") {
      throw new Error(
        "k3d is not installed or not on PATH: install k3d (https://k3d.io) or set cluster.mode to kubeconfig",
      );
    }
    throw new Error(
      `k3d ${args.join(" ")} failed (exit ${e.status}): ${(e.stderr ?? "").trim().slice(-2000)}`,
    );
  }
}

function spec(inputs: K3dClusterSpec): K3dClusterSpec {
  return {
    name: inputs.name,
    servers: inputs.servers,
    agents: inputs.agents,
    ...(inputs.k3sImage ? { k3sImage: inputs.k3sImage } : {}),
  };
}

const k3dClusterProvider: pulumi.dynamic.ResourceProvider<K3dClusterSpec, State> = {
  async create(inputs) {
    const desired = spec(inputs);
    const current = k3dClusterState(k3d(k3dListArgs()), desired.name);
    // A cluster of that name left by a crashed run (or made by hand) is adopted, not duplicated.
    if (current === "absent") k3d(k3dCreateArgs(desired));
    else if (current === "stopped") k3d(k3dStartArgs(desired.name));
    const { randomUUID } = require("node:crypto") as typeof import("node:crypto");
    return {
      id: desired.name,
      outs: {
        ...desired,
        kubeconfig: k3d(k3dKubeconfigArgs(desired.name)),
        instanceId: randomUUID(),
        state: "running",
      },
    };
  },

  async read(id, props) {
    if (!props) return { id };
    const state = k3dClusterState(k3d(k3dListArgs()), props.name);
    // A blank id tells the engine the cluster is gone: refresh drops it and `up` recreates it.
    if (state === "absent") return { id: "" };
    if (state === "stopped") return { id, props: { ...props, state } };
    return { id, props: { ...props, state, kubeconfig: k3d(k3dKubeconfigArgs(props.name)) } };
  },

  async diff(_id, olds, news) {
    const desired = spec(news);
    const replaces = (["name", "servers", "agents", "k3sImage"] as const).filter(
      (k) => olds[k] !== desired[k],
    );
    return {
      changes: replaces.length > 0 || olds.state === "stopped",
      replaces,
      deleteBeforeReplace: true,
    };
  },

  async update(_id, olds, news) {
    if (olds.state === "stopped") k3d(k3dStartArgs(olds.name));
    return {
      outs: { ...olds, ...spec(news), kubeconfig: k3d(k3dKubeconfigArgs(olds.name)), state: "running" },
    };
  },

  async delete(_id, props) {
    if (k3dClusterState(k3d(k3dListArgs()), props.name) !== "absent") k3d(k3dDeleteArgs(props.name));
  },
};

export class K3dCluster extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  declare readonly kubeconfig: pulumi.Output<string>;
  declare readonly instanceId: pulumi.Output<string>;
  declare readonly state: pulumi.Output<string>;

  constructor(name: string, args: K3dClusterInputs, opts?: pulumi.CustomResourceOptions) {
    super(
      k3dClusterProvider,
      name,
      { kubeconfig: undefined, instanceId: undefined, state: undefined, ...args },
      { ...opts, additionalSecretOutputs: ["kubeconfig"] },
      "obol",
      "K3dCluster",
    );
  }
}
