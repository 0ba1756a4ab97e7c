import * as pulumi from "@pulumi/pulumi";
import { k3dImageImportArgs } from "./k3dArgs";

/**
 * The runtime image, built locally with Docker and imported into the k3d cluster (k3d mode
 * without a registry). It is rebuilt when its sources change (the tag is a content hash) and
 * imported again whenever the cluster is recreated (`clusterInstance` changes).
 */
export interface RuntimeImageInputs {
  /** Image reference to build, e.g. obol-stack/runtime:src-1a2b3c. */
  tag: pulumi.Input<string>;
  /** Docker build context and Dockerfile (absolute paths). */
  context: pulumi.Input<string>;
  dockerfile: pulumi.Input<string>;
  cluster: pulumi.Input<string>;
  clusterInstance: pulumi.Input<string>;
}

interface Props {
  tag: string;
  context: string;
  dockerfile: string;
  cluster: string;
  clusterInstance: string;
}

function run(command: string, args: string[]): void {
  const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
  try {
    execFileSync(command, args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer; status?: number };
    if (e.code === "ENOENT")
      throw new Error(
        `${command} is not installed or not on PATH; it is needed to build the runtime image (or set images.runtime to a pushed image)`,
      );
    throw new Error(
      `${command} ${args.join(" ")} failed (exit ${e.status}): ${(e.stderr?.toString() ?? "").trim().slice(-2000)}`,
    );
  }
}

const runtimeImageProvider: pulumi.dynamic.ResourceProvider<Props, Props> = {
  async create(inputs) {
    run("docker", ["build", "--file", inputs.dockerfile, "--tag", inputs.tag, inputs.context]);
    run("k3d", k3dImageImportArgs(inputs.cluster, [inputs.tag]));
    return { id: `${inputs.cluster}/${inputs.tag}`, outs: inputs };
  },
  async diff(_id, olds, news) {
    const replaces = (["tag", "cluster", "clusterInstance", "context", "dockerfile"] as const).filter(
      (k) => olds[k] !== news[k],
    );
    return { changes: replaces.length > 0, replaces };
  },
  // The image goes away with the cluster; nothing to delete on its own.
  async delete() {},
};

export class RuntimeImage extends pulumi.dynamic.Resource {
  declare readonly tag: pulumi.Output<string>;

  constructor(name: string, args: RuntimeImageInputs, opts?: pulumi.CustomResourceOptions) {
    super(runtimeImageProvider, name, args, opts, "obol", "RuntimeImage");
  }
}
