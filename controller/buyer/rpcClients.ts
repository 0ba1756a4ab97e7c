import { createPublicClient, http, type PublicClient } from "viem";

/** One viem public client per RPC URL, made on first use (they keep their HTTP agents). */
export class RpcClients {
  private readonly clients = new Map<string, PublicClient>();

  get(rpcUrl: string): PublicClient {
    let client = this.clients.get(rpcUrl);
    if (!client) {
      client = createPublicClient({ transport: http(rpcUrl) }) as PublicClient;
      this.clients.set(rpcUrl, client);
    }
    return client;
  }
}
