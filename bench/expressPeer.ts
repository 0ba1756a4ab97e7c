/**
 * The peer for `bench:gateway`: the same paid workload behind the official @x402/express
 * middleware (authorization flow: verify, run the handler, settle only after a < 400 answer).
 * The handler relays the upstream as the gateway does. Args: <port> <upstream-port>
 * <facilitator-url> <network> <payTo> <asset-json>.
 */
import * as http from "node:http";
import { HTTPFacilitatorClient, x402ResourceServer } from "@x402/core/server";
import type { Network } from "@x402/core/types";
import { registerExactEvmScheme } from "@x402/evm/exact/server";
import { paymentMiddleware } from "@x402/express";
import express from "express";

const args = process.argv.slice(2);
function arg(index: number, name: string): string {
  const value = args[index];
  if (value === undefined) throw new Error(`missing argument <${name}> (position ${index + 1})`);
  return value;
}
const port = arg(0, "port");
const upstreamPort = arg(1, "upstream-port");
const facilitatorUrl = arg(2, "facilitator-url");
const network = arg(3, "network");
const payTo = arg(4, "payTo");
const assetJson = arg(5, "asset-json");
const asset = JSON.parse(assetJson) as { address: string; eip712Name: string; eip712Version: string };

const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: facilitatorUrl }));
registerExactEvmScheme(server, { networks: [network as Network] });

const app = express();
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
app.use(
  paymentMiddleware(
    {
      "GET /fail": {
        accepts: {
          scheme: "exact",
          network: network as Network,
          payTo,
          price: {
            asset: asset.address,
            amount: "1000",
            extra: { name: asset.eip712Name, version: asset.eip712Version },
          },
          maxTimeoutSeconds: 600,
        },
        description: "bench",
      },
    },
    server,
  ),
);
app.get("/fail", (req, res) => {
  const up = http.request(
    { host: "127.0.0.1", port: Number(upstreamPort), path: req.url, method: "GET", agent },
    (upRes) => {
      res.status(upRes.statusCode ?? 502);
      upRes.pipe(res);
    },
  );
  up.on("error", () => res.status(502).end());
  up.end();
});
app.listen(Number(port), "127.0.0.1");
