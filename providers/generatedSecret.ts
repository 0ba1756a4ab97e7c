import * as pulumi from "@pulumi/pulumi";

/**
 * A random secret generated once and kept in (encrypted) stack state, for credentials the
 * operator need not choose, such as the LiteLLM master key. Recreated only if `prefix` changes.
 */
export interface GeneratedSecretInputs {
  prefix: pulumi.Input<string>;
  bytes: pulumi.Input<number>;
}

const generatedSecretProvider: pulumi.dynamic.ResourceProvider<{ prefix: string; bytes: number }> = {
  async create(inputs) {
    const { randomBytes } = require("node:crypto") as typeof import("node:crypto");
    const value = `${inputs.prefix}${randomBytes(inputs.bytes).toString("hex")}`;
    return { id: `generated-${randomBytes(4).toString("hex")}`, outs: { ...inputs, value } };
  },
  async diff(_id, olds, news) {
    const replaces = (["prefix", "bytes"] as const).filter((k) => olds[k] !== news[k]);
    return { changes: replaces.length > 0, replaces };
  },
};

export class GeneratedSecret extends pulumi.dynamic.Resource {
  declare readonly value: pulumi.Output<string>;

  constructor(name: string, args: GeneratedSecretInputs, opts?: pulumi.CustomResourceOptions) {
    super(
      generatedSecretProvider,
      name,
      { value: undefined, ...args },
      { ...opts, additionalSecretOutputs: ["value"] },
      "obol",
      "GeneratedSecret",
    );
  }
}
