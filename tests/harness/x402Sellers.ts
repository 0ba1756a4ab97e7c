/**
 * Third-party x402 sellers, each built only with its own library, run as a process:
 *   node --import tsx tests/harness/x402Sellers.ts <kind> <port> <facilitator-url> <network> <payTo> <asset-json>
 * kinds: `hono` (@x402/hono v2 on @hono/node-server) and `express-v1` (the original x402-express
 * 1.x: x402 v1, X-PAYMENT, legacy network names). Both sell every POST (the buyer proxy's
 * `/v1/chat/completions`, the purchase probe's POST to the endpoint) and `GET /paid` for 1000
 * atomic units of the asset, answering JSON that names the seller. (The @x402/express v2 seller is bench/expressPeer.ts.)
 */
import { serve } from "@hono/node-server";
import { HTTPFacilitatorClient, x402ResourceServer } from "@x402/core/server";
import type { Network } from "@x402/core/types";
import { registerExactEvmScheme } from "@x402/evm/exact/server";
import { paymentMiddleware as honoPaymentMiddleware } from "@x402/hono";
import express from "express";
import { Hono } from "hono";
import { paymentMiddleware as v1PaymentMiddleware } from "x402-express";
import { legacyNetworkName } from "../../api/chains";

const args = process.argv.slice(2);
if (args.length !== 6 || args.some((a) => a === "")) {
  console.error(
    "usage: x402Sellers.ts <hono|express-v1> <port> <facilitator-url> <network> <payTo> <asset-json>",
  );
  process.exit(2);
}
const [kind, port, facilitatorUrl, network, payTo, assetJson] = args as [
  string,
  string,
  string,
  string,
  string,
  string,
];
const asset = JSON.parse(assetJson) as {
  address: `0x${string}`;
  decimals: number;
  eip712Name: string;
  eip712Version: string;
};
const AMOUNT = "1000";
const ROUTES = ["POST /*", "GET /paid"] as const;
const answer = { seller: kind, paid: true };

if (kind === "hono") {
  const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: facilitatorUrl }));
  registerExactEvmScheme(server, { networks: [network as Network] });
  const route = {
    accepts: {
      scheme: "exact",
      network: network as Network,
      payTo,
      price: {
        asset: asset.address,
        amount: AMOUNT,
        extra: { name: asset.eip712Name, version: asset.eip712Version },
      },
      maxTimeoutSeconds: 600,
    },
    description: "a paid route of @x402/hono",
  };
  const app = new Hono();
  app.use(honoPaymentMiddleware(Object.fromEntries(ROUTES.map((r) => [r, route])), server));
  app.post("*", (c) => c.json(answer));
  app.get("/paid", (c) => c.json(answer));
  serve({ fetch: app.fetch, port: Number(port), hostname: "127.0.0.1" });
} else if (kind === "express-v1") {
  // x402 v1 names networks the old way (base-sepolia), and so must its sellers' config.
  const v1Network = legacyNetworkName(network as `eip155:${number}`) as "base-sepolia";
  const route = {
    price: {
      amount: AMOUNT,
      asset: {
        address: asset.address,
        decimals: asset.decimals,
        eip712: { name: asset.eip712Name, version: asset.eip712Version },
      },
    },
    network: v1Network,
    config: { description: "a paid route of x402-express 1.x", maxTimeoutSeconds: 600 },
  };
  const app = express();
  app.use(
    v1PaymentMiddleware(payTo as `0x${string}`, Object.fromEntries(ROUTES.map((r) => [r, route])), {
      url: facilitatorUrl as `${string}://${string}`,
    }),
  );
  app.post(/.*/, (_req, res) => void res.json(answer));
  app.get("/paid", (_req, res) => void res.json(answer));
  app.listen(Number(port), "127.0.0.1");
} else {
  console.error(`unknown seller kind ${kind}: use hono or express-v1`);
  process.exit(2);
}
