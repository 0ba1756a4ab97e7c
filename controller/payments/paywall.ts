/**
 * The browser paywall: what a person who opens a paid URL in a browser sees instead of the 402's
 * JSON. It follows @x402/core's HTTP server: a request is a browser's when it accepts text/html
 * and its User-Agent says Mozilla; the answer keeps the 402 status (412 for a missing Permit2
 * allowance) and the PAYMENT-REQUIRED header, so a wallet extension or an x402 client still reads
 * the terms; the page comes from a `PaywallProvider`.
 *
 * Why not `@x402/paywall`: its newest release (2.12.0) pins `@x402/core` ~2.12.0 while this
 * runtime runs 2.27, and it bundles React 19, wagmi and the Solana/Algorand wallet stacks (a
 * script-driven wallet UI the gateway's CSP forbids). This page is server-rendered HTML with no
 * script: it names the price, the network and how to pay.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { PaywallConfig, PaywallProvider } from "@x402/core/server";
import type { PaymentRequired } from "@x402/core/types";
import { escapeHtml, HOW_TO_PAY_URL } from "../gateway/catalog/storefront";

/** @x402/core's test (x402HTTPResourceServer.isWebBrowser): accepts text/html, Mozilla user agent. */
export function isWebBrowser(headers: IncomingHttpHeaders): boolean {
  const accept = String(headers.accept ?? "");
  const userAgent = String(headers["user-agent"] ?? "");
  return accept.includes("text/html") && userAgent.includes("Mozilla");
}

/** What the page says beyond the wire terms: each price as a person reads it, and why it was refused. */
export interface PaywallView {
  /** "0.001 USDC on Base Sepolia (testnet)", one per accepted payment (requirements.prices). */
  readonly prices: readonly string[];
  /** The request's `upto` options as a person reads them (requirements.metered), if any. */
  readonly metered?: readonly string[] | undefined;
  /** The refusal's message when a payment was sent and refused; absent for a first visit. */
  readonly refusal?: string | undefined;
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif;background:#f6f7fb;color:#14161f}
main{max-width:620px;margin:48px auto;padding:0 20px}
.card{background:#fff;border:1px solid #e4e7ef;border-radius:16px;padding:28px;box-shadow:0 6px 24px rgba(20,22,31,.06)}
h1{margin:0 0 6px;font-size:26px;letter-spacing:-.02em}
.desc{margin:0 0 18px;color:#5d6478}
.price{font-size:22px;font-weight:700;margin:0 0 4px}
.also{margin:0 0 16px;color:#5d6478}
.refusal{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;border-radius:10px;padding:10px 14px}
code{font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
a{color:#4f46e5}
`;

export class OfferPaywall implements PaywallProvider {
  constructor(private readonly view: PaywallView) {}

  generateHtml(paymentRequired: PaymentRequired, config?: PaywallConfig): string {
    const [first = "", ...others] = this.view.prices;
    const resource = paymentRequired.resource;
    const url = config?.currentUrl ?? resource?.url ?? "";
    const title = config?.appName ?? "Payment required";
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment required · ${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main><div class="card">
  <h1>Payment required</h1>
  <p class="desc">${escapeHtml(resource?.description ?? "")}</p>
  <p class="price">This costs ${escapeHtml(first)} per request.</p>
  ${others.length ? `<p class="also">Also accepted: ${escapeHtml(others.join("; "))}.</p>` : ""}
  ${this.view.metered?.length ? `<p class="also">Or pay only for what is used: ${escapeHtml(this.view.metered.join("; "))}.</p>` : ""}
  ${this.view.refusal ? `<p class="refusal">The payment sent was refused: ${escapeHtml(this.view.refusal)}</p>` : ""}
  <p>How to pay: request <code>${escapeHtml(url)}</code> with an <a href="${HOW_TO_PAY_URL}">x402 client</a>, which reads this answer's terms, pays and repeats the request.</p>
  <p><a href="/">All services</a></p>
</div></main>
</body>
</html>
`;
  }
}
