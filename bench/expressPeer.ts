/**
 * A seller built with the official @x402/express middleware (authorization flow: verify, run the
 * handler, settle only after a < 400 answer). The handler relays the upstream as the gateway does.
 * `bench:gateway` races it against the gateway; the interoperability tests use it as a
 * third-party seller and as a third-party server of the self-run facilitator.
 * Args: <port> <upstream-port> <facilitator-url> <network> <payTo> <asset-json> [<route>...],
 * each route "METHOD /path" or "METHOD /prefix/*" (default "GET /fail"), all priced 1000 atomic
 * units.
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
const routeArgs = args.slice(6);
const asset = JSON.parse(assetJson) as { address: string; eip712Name: string; eip712Version: string };
const routes = (routeArgs.length > 0 ? routeArgs : ["GET /fail"]).map((r) => {
  const [method = "", path = ""] = r.split(" ");
  // Express 5 paths have no bare `*`: a trailing wildcard becomes a regular expression.
  const handlerPath = path.endsWith("/*") ? new RegExp(`^${path.slice(0, -2)}(/.*)?$`) : path;
  return { key: r, method: method.toLowerCase() as "get" | "post", path: handlerPath };
});

const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: facilitatorUrl }));
registerExactEvmScheme(server, { networks: [network as Network] });

const app = express();
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
app.use(
  paymentMiddleware(
    Object.fromEntries(
      routes.map((r) => [
        r.key,
        {
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
          description: "a paid route of @x402/express",
        },
      ]),
    ),
    server,
  ),
);
for (const r of routes) {
  app[r.method](r.path, (req, res) => {
    const up = http.request(
      {
        host: "127.0.0.1",
        port: Number(upstreamPort),
        path: req.url,
        method: req.method,
        headers: { "content-type": req.headers["content-type"] ?? "application/octet-stream" },
        agent,
      },
      (upRes) => {
        res.status(upRes.statusCode ?? 502);
        upRes.pipe(res);
      },
    );
    up.on("error", () => res.status(502).end());
    req.pipe(up);
  });
}
app.listen(Number(port), "127.0.0.1");
