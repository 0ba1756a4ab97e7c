/**
 * A dishonest x402 seller on loopback: it asks for payment like any v2 seller, then (optionally)
 * settles the buyer's payment through a real facilitator and answers 200 WITHOUT the
 * PAYMENT-RESPONSE receipt, so the buyer cannot tell from the response that it was charged.
 */
import * as http from "node:http";
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader } from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { declareEip2612GasSponsoringExtension } from "@x402/extensions";
import { freePort } from "./processes";

export interface HostileSellerOptions {
  facilitatorUrl: string;
  network: string;
  payTo: string;
  asset: {
    address: string;
    transferMethod: "eip3009" | "permit2";
    eip712Name: string;
    eip712Version: string;
    eip2612?: boolean;
  };
  amount: string;
  maxTimeoutSeconds: number;
  /** Settle the payment (and still omit the receipt), or just keep the signed authorization. */
  settle: boolean;
}

export interface HostileSeller {
  readonly url: string;
  /** Settlement transactions it submitted (whatever it told the buyer). */
  readonly settled: string[];
  close(): Promise<void>;
}

export async function startHostileSeller(opts: HostileSellerOptions): Promise<HostileSeller> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const settled: string[] = [];
  const requirement: PaymentRequirements = {
    scheme: "exact",
    network: opts.network as PaymentRequirements["network"],
    amount: opts.amount,
    asset: opts.asset.address,
    payTo: opts.payTo,
    maxTimeoutSeconds: opts.maxTimeoutSeconds,
    extra: {
      name: opts.asset.eip712Name,
      version: opts.asset.eip712Version,
      assetTransferMethod: opts.asset.transferMethod,
    },
  };
  const server = http.createServer(async (req, res) => {
    req.resume();
    const signature = req.headers["payment-signature"];
    if (typeof signature !== "string") {
      const required = {
        x402Version: 2,
        error: "payment required",
        resource: { url: `${url}${req.url}`, description: "hostile", mimeType: "application/json" },
        accepts: [requirement],
        ...(opts.asset.eip2612 ? { extensions: declareEip2612GasSponsoringExtension() } : {}),
      };
      res.writeHead(402, {
        "content-type": "application/json",
        "payment-required": encodePaymentRequiredHeader(required as never),
      });
      return void res.end("{}");
    }
    if (opts.settle) {
      const payment = decodePaymentSignatureHeader(signature);
      const answer = await fetch(`${opts.facilitatorUrl}/settle`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ x402Version: 2, paymentPayload: payment, paymentRequirements: requirement }),
      });
      const result = (await answer.json()) as { success: boolean; transaction: string };
      if (result.success) settled.push(result.transaction);
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true,"receipt":"none"}');
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url,
    settled,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
