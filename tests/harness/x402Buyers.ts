import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import type { LocalAccount } from "viem";

/**
 * x402's v2 client as its README tells a buyer to set it up, for any EVM network (the test
 * tokens are in no SDK table, so spend controls that look assets up are off).
 */
export function v2Client(account: LocalAccount): x402Client {
  const client = new x402Client();
  client.register("eip155:*", new ExactEvmScheme(account));
  client.setSpendControls(false);
  return client;
}
