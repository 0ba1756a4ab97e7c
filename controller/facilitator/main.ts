import type { Network } from "@x402/core/types";
import { ENV, PORTS } from "../../api/contract";
import { readPrivateKey } from "../shared/secrets";
import { startFacilitator } from "./server";

/** `obol-runtime facilitator`: env SIGNER_KEY_FILE (or SIGNER_KEY), RPC_URL, PORT, NETWORKS (comma list). */
export async function run(_argv: string[]): Promise<void> {
  const rpcUrl = process.env[ENV.rpcUrl];
  if (!rpcUrl) throw new Error(`${ENV.rpcUrl} must be set: the chain the facilitator settles on`);
  const networks = process.env.NETWORKS?.split(",").map((n) => n.trim() as Network);
  const running = await startFacilitator({
    signerKey: readPrivateKey(ENV.signerKey),
    rpcUrl,
    ...(networks ? { networks } : {}),
    port: Number(process.env[ENV.port] ?? PORTS.facilitator),
    host: process.env.HOST ?? "0.0.0.0",
  });
  console.log(`facilitator ${running.address} serving ${running.networks.join(", ")} on ${running.url}`);
  const stop = () => running.close().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
