/** A fake x402 seller on loopback: answers 402 like a v2 or v1 seller, or 200 like a free API. */
import * as http from "node:http";
import { encodePaymentRequiredHeader } from "@x402/core/http";
import { freePort } from "../../harness/processes";
import { BASE_SEPOLIA, PAY_TO, USDC } from "./helpers";

export class FakeSeller {
  port = 0;
  server?: http.Server;
  readonly requests: { method: string; url: string; userAgent?: string | undefined }[] = [];

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = http.createServer((req, res) => {
      this.requests.push({
        method: req.method ?? "",
        url: req.url ?? "",
        userAgent: req.headers["user-agent"],
      });
      req.resume();
      const requirements = {
        scheme: "exact",
        network: BASE_SEPOLIA as `${string}:${string}`,
        asset: USDC.address,
        amount: "1000",
        payTo: PAY_TO,
        maxTimeoutSeconds: 300,
        extra: { name: USDC.eip712Name, version: USDC.eip712Version },
      };
      if (req.url === "/v2/chat") {
        const paymentRequired = {
          x402Version: 2,
          error: "payment required",
          resource: {
            url: `http://127.0.0.1:${this.port}/v2/chat`,
            description: "chat",
            mimeType: "application/json",
          },
          accepts: [requirements],
        };
        res.writeHead(402, {
          "content-type": "application/json",
          "payment-required": encodePaymentRequiredHeader(paymentRequired),
        });
        res.end("{}");
      } else if (req.url === "/v1/chat") {
        const { amount, ...rest } = requirements;
        res.writeHead(402, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            x402Version: 1,
            accepts: [{ ...rest, network: "base-sepolia", maxAmountRequired: amount }],
          }),
        );
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end('{"free":true}');
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
