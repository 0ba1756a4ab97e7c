import * as pulumi from "@pulumi/pulumi";

/**
 * The chain block at which a purchase began, read once when the purchase is created and kept in
 * stack state. The buyer counts a purchase's earlier spend from the chain starting here when its
 * ledger is lost (docs/adr/0005-budget-survives-the-volume.md): the chain is the record of what
 * was paid, Pulumi state the record of since when. Replaced only if the purchase moves to
 * another chain; a new RPC URL for the same chain changes nothing.
 */
export interface SpendOriginArgs {
  /** CAIP-2 network of the purchase's payments. */
  network: pulumi.Input<string>;
  /** JSON-RPC URL of that network. */
  rpcUrl: pulumi.Input<string>;
}

interface Inputs {
  network: string;
  rpcUrl: string;
}

const spendOriginProvider: pulumi.dynamic.ResourceProvider<Inputs> = {
  async create(inputs) {
    const { createPublicClient, http } = require("viem") as typeof import("viem");
    const client = createPublicClient({ transport: http(inputs.rpcUrl, { timeout: 15_000 }) });
    const chainId = await client.getChainId();
    if (`eip155:${chainId}` !== inputs.network) {
      throw new Error(`purchase payment.rpcUrl serves chain eip155:${chainId}, not ${inputs.network}`);
    }
    const block = (await client.getBlockNumber()).toString();
    return { id: `${inputs.network}@${block}`, outs: { ...inputs, block } };
  },
  async diff(_id, olds, news) {
    const replaces = olds.network !== news.network ? ["network"] : [];
    return { changes: replaces.length > 0 || olds.rpcUrl !== news.rpcUrl, replaces };
  },
  async update(_id, olds, news) {
    return { outs: { ...news, block: (olds as Inputs & { block: string }).block } };
  },
};

export class SpendOrigin extends pulumi.dynamic.Resource {
  /** Decimal block number. */
  declare readonly block: pulumi.Output<string>;

  constructor(name: string, args: SpendOriginArgs, opts?: pulumi.CustomResourceOptions) {
    super(spendOriginProvider, name, { block: undefined, ...args }, opts, "obol", "SpendOrigin");
  }
}
