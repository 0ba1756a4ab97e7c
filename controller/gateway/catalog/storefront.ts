/**
 * `/`: the storefront. Server-rendered HTML and CSS, no framework; every piece of user data
 * goes through escapeHtml. The only script copies example commands to the clipboard.
 */
import { PER_MTOK_BASIS_TOKENS, UPTO_DEFAULT_MAX_TOKENS } from "../../../api/pricing";
import {
  type Catalog,
  type CatalogOffer,
  type CatalogPayment,
  curlCommand,
  type FreeRoute,
  type PricedRoute,
} from "./model";

/** Where a first-time visitor learns to pay: the protocol's own site. */
export const HOW_TO_PAY_URL = "https://x402.org";

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** Escaped text that may wrap after each "/" (long URLs in narrow cards). */
function breakable(text: string): string {
  return escapeHtml(text).replace(/\//g, "/<wbr>");
}

const CSS = `
:root{--bg:#f6f7fb;--card:#fff;--ink:#14161f;--muted:#5d6478;--line:#e4e7ef;--accent:#4f46e5;--accent-soft:#eef0ff;--ok:#0f9d58;--code:#0f1220;--code-ink:#e6e8f2}
*{box-sizing:border-box}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif;background:var(--bg);color:var(--ink)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{background:linear-gradient(135deg,#1e1b4b 0%,#4338ca 60%,#6366f1 100%);color:#fff;padding:48px 24px 56px}
.wrap{max-width:1100px;margin:0 auto}
header h1{margin:0 0 8px;font-size:32px;letter-spacing:-.02em}
header p{margin:0;max-width:720px;color:#dfe1ff;font-size:16px}
.links{margin-top:20px;display:flex;flex-wrap:wrap;gap:10px}
.links a{color:#fff;background:rgba(255,255,255,.14);border:1px solid rgba(255,255,255,.25);padding:6px 12px;border-radius:999px;font-size:13px}
.links a:hover{background:rgba(255,255,255,.24);text-decoration:none}
main{padding:0 24px 48px}
.summary{margin:-24px auto 12px;background:var(--card);border:1px solid var(--line);border-radius:14px;padding:14px 18px;display:flex;gap:10px;align-items:center;box-shadow:0 6px 24px rgba(20,22,31,.06)}
.dot{flex:none;width:10px;height:10px;border-radius:50%;background:var(--ok);box-shadow:0 0 0 4px rgba(15,157,88,.15)}
.how{margin:0 0 20px;color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:16px;padding:22px;display:flex;flex-direction:column;gap:14px;box-shadow:0 1px 2px rgba(20,22,31,.04)}
.card h2{margin:0;font-size:20px;letter-spacing:-.01em}
.top{display:flex;justify-content:space-between;align-items:flex-start;gap:12px}
.badge{font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:var(--accent);background:var(--accent-soft);padding:3px 9px;border-radius:999px;white-space:nowrap}
.desc{margin:0;color:var(--muted)}
.price{display:flex;align-items:baseline;gap:8px}
.amount{font-size:28px;font-weight:700;letter-spacing:-.02em}
.unit{color:var(--muted)}
.rate{margin:-8px 0 0;color:var(--muted);font-size:14px}
.testnet{display:inline-block;margin-left:6px;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:#92400e;background:#fef3c7;padding:1px 7px;border-radius:999px}
.note{color:var(--muted)}
dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:6px 14px;font-size:14px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
code{font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.try{margin-top:auto;background:var(--code);border-radius:10px;overflow:hidden}
.try-bar{display:flex;justify-content:space-between;align-items:center;padding:7px 10px 7px 14px;background:#1a1e33;color:#9aa1c2;font-size:12px;letter-spacing:.03em;text-transform:uppercase}
.try pre{margin:0;color:var(--code-ink);padding:12px 14px 14px;white-space:pre;overflow-x:auto}
.copy{background:#2f3553;color:#fff;border:0;border-radius:6px;padding:3px 10px;font-size:12px;cursor:pointer;text-transform:none;letter-spacing:0}
.copy:hover{background:#434a70}
ul.free{margin:0;padding:0;list-style:none}
.empty{background:var(--card);border:1px dashed var(--line);border-radius:16px;padding:48px;text-align:center;color:var(--muted)}
footer{color:var(--muted);font-size:13px;text-align:center;padding:24px}
`;

const SCRIPT = `document.querySelectorAll("button.copy").forEach(function(b){b.addEventListener("click",function(){var t=document.getElementById(b.dataset.target).textContent;navigator.clipboard&&navigator.clipboard.writeText(t).then(function(){b.textContent="Copied";setTimeout(function(){b.textContent="Copy"},1500)})})});`;

function network(p: CatalogPayment): string {
  return `${escapeHtml(p.networkName)}${p.testnet ? ' <span class="testnet" title="test tokens with no value">testnet</span>' : ""}`;
}

function freeRoute(r: FreeRoute): string {
  const methods = r.methods?.length ? `${r.methods.join(", ")} ` : "";
  const what = r.healthCheck ? " (health check)" : r.below ? " and everything below it" : "";
  return `<li>${escapeHtml(methods)}<code>${breakable(r.path)}</code><span class="note">${escapeHtml(what)}</span></li>`;
}

function pricedRoute(r: PricedRoute): string {
  const methods = r.methods?.length ? `${r.methods.join(", ")} ` : "";
  const p = r.payments[0];
  return `<li>${escapeHtml(methods)}<code>${breakable(r.path)}</code><span class="note">${escapeHtml(r.below ? " and everything below it" : "")}: ${escapeHtml(`${p.perCallDisplay || p.priceDisplay} per call`)}</span></li>`;
}

function card(o: CatalogOffer, index: number): string {
  const p = o.payments[0];
  const more = o.payments.slice(1);
  const id = `curl-${index}`;
  // The big number is what one call costs; a per-token rate is explained below it.
  const perCall = p.perCallDisplay || p.priceDisplay;
  const fixed = `each call is charged a fixed ${PER_MTOK_BASIS_TOKENS.toLocaleString("en-US")} tokens, paid before it runs`;
  // With upto the buyer signs a maximum up front and pays the tokens the answer reports.
  const metered = p.schemes.some((s) => s.scheme === "upto")
    ? `Clients that speak x402 <code>upto</code> pay only for the tokens used: they sign a maximum of max_tokens (${UPTO_DEFAULT_MAX_TOKENS.toLocaleString("en-US")} when absent) plus one token per request byte at this rate, and are charged the answer's token count. Other clients: ${fixed}.`
    : "";
  const rate =
    p.priceUnit === "perMTok"
      ? `<p class="rate">Rate ${escapeHtml(p.priceDisplay)} per 1M tokens; ${metered || `${fixed}.`}</p>`
      : "";
  return `<article class="card" data-offer="${escapeHtml(o.name)}">
  <div class="top"><h2>${escapeHtml(o.name)}</h2><span class="badge">${escapeHtml(o.type)}</span></div>
  <p class="desc">${escapeHtml(o.description)}</p>
  <div class="price"><span class="amount">${escapeHtml(perCall)}</span><span class="unit">per call</span></div>
  ${rate}
  <dl>
    <dt>Network</dt><dd>${network(p)}</dd>
    ${o.model ? `<dt>Model</dt><dd><code>${escapeHtml(o.model)}</code></dd>` : ""}
    <dt>Endpoint</dt><dd><code>${breakable(o.endpoint)}</code></dd>
    ${o.endsAt ? `<dt>${o.ended ? "Ended" : "Ends"}</dt><dd class="ends"><time datetime="${escapeHtml(o.endsAt)}">${escapeHtml(endsText(o.endsAt))}</time>${o.ended ? " · no longer taking payments" : ""}</dd>` : ""}
    ${o.pricedRoutes.length ? `<dt>Priced</dt><dd><ul class="free">${o.pricedRoutes.map(pricedRoute).join("")}</ul></dd>` : ""}
    ${o.freeRoutes.length ? `<dt>Free</dt><dd><ul class="free">${o.freeRoutes.map(freeRoute).join("")}</ul></dd>` : ""}
    ${o.signInRoutes.length ? `<dt>Sign in</dt><dd><ul class="free signin">${o.signInRoutes.map(freeRoute).join("")}</ul><span class="note">free with a wallet signature (x402 sign-in-with-x), no payment</span></dd>` : ""}
    ${more.length ? `<dt>Also</dt><dd>${more.map((m) => `${escapeHtml(`${m.perCallDisplay || m.priceDisplay} per call on`)} ${network(m)}`).join(", ")}</dd>` : ""}
  </dl>
  <div class="try"><div class="try-bar"><span>Example request</span><button class="copy" type="button" data-target="${id}">Copy</button></div><pre id="${id}"><code>${escapeHtml(curlCommand(o.example))}</code></pre></div>
</article>`;
}

/** "2026-12-31 23:00 UTC": a person reads the end in UTC, unambiguously. */
function endsText(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

export function renderStorefront(catalog: Catalog): string {
  const base = catalog.baseUrl;
  const n = catalog.offers.length;
  const body =
    n === 0
      ? `<div class="empty"><h2>No services available right now</h2><p>Offers appear here as soon as they are ready.</p></div>`
      : `<div class="grid">${catalog.offers.map(card).join("\n")}</div>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(catalog.displayName)}</title>
<meta name="description" content="${escapeHtml(catalog.description)}">
<style>${CSS}</style>
</head>
<body>
<header><div class="wrap">
  <h1>${escapeHtml(catalog.displayName)}</h1>
  <p>${escapeHtml(catalog.description)}</p>
  <nav class="links">
    <a href="${escapeHtml(base)}/skill.md">skill.md for agents</a>
    <a href="${escapeHtml(base)}/api/services.json">services.json</a>
    <a href="${escapeHtml(base)}/openapi.json">OpenAPI</a>
    <a href="${escapeHtml(base)}/.well-known/agent-registration.json">ERC-8004 registration</a>
    <a href="${escapeHtml(base)}/.well-known/x402">x402 discovery</a>
  </nav>
</div></header>
<main><div class="wrap">
  <div class="summary"><span class="dot"></span><span>${n} service${n === 1 ? "" : "s"} available.</span></div>
  <p class="how">How to pay: call an endpoint with an <a href="${HOW_TO_PAY_URL}">x402 client</a>, which pays the price in the 402 answer and repeats the call.</p>
  ${body}
</div></main>
<footer>Served by obol-stack · prices are per call, paid with x402 stablecoin micropayments</footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
