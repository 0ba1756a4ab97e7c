/** `/skill.md`: how an LLM agent finds, pays for and calls each offer. */
import { type Catalog, type CatalogOffer, curlCommand } from "./model";

/** Keeps user text from breaking a markdown table cell or line. */
function cell(text: string): string {
  return text.replace(/\r?\n/g, " ").replace(/\|/g, "\\|");
}

function paymentLine(payments: CatalogOffer["payments"]): string {
  return payments
    .map(
      (p) =>
        `${p.priceDisplay} ${p.unitDisplay} on ${p.networkName} (\`${p.network}\`, asset \`${p.asset.address}\`, payTo \`${p.payTo}\`): ${
          p.schemes.some((x) => x.scheme !== "exact")
            ? `schemes ${p.schemes.map((x) => x.charge).join("; ")}`
            : `the 402 asks \`amount\` ${p.priceAtomicUnits}`
        }`,
    )
    .join("; or ");
}

export function renderSkillMd(catalog: Catalog): string {
  const base = catalog.baseUrl;
  const lines: string[] = [
    `# ${cell(catalog.displayName)} Service Catalog`,
    "",
    cell(catalog.description),
    "",
    `${catalog.offers.length} service(s) available. Machine-readable: [services.json](${base}/api/services.json), [openapi.json](${base}/openapi.json), [agent-registration.json](${base}/.well-known/agent-registration.json).`,
    "",
    "## How to pay (x402)",
    "",
    "1. Call the endpoint without payment. A paid route answers `402 Payment Required` with its payment requirements, in two forms:",
    "   - x402 v2: the `PAYMENT-REQUIRED` header, base64-encoded JSON with `x402Version` 2 and `accepts[]`; each entry of `accepts[]` has: `scheme`, `network`, `amount`, `asset`, `payTo`, `maxTimeoutSeconds`, `extra`. `network` is CAIP-2 (`eip155:84532`).",
    "   - x402 v1: the JSON body, with `x402Version` 1 and `accepts[]`; each entry of `accepts[]` has: `scheme`, `network`, `maxAmountRequired`, `asset`, `payTo`, `resource`, `maxTimeoutSeconds`, `extra`. `network` is a name (`base-sepolia`); Permit2 entries exist in v2 only.",
    "2. Pick one entry whose network and asset you can pay with. Its price is `amount` (v2) or `maxAmountRequired` (v1), in the token's smallest unit: the per-request charge listed for each service below.",
    "3. Sign the payment authorization (EIP-3009 `transferWithAuthorization` for USDC, or Permit2 when `extra.assetTransferMethod` is `permit2`); it is gasless for you.",
    "4. Repeat the same request with the signed payload in the `PAYMENT-SIGNATURE` header (v2) or the `X-PAYMENT` header (v1).",
    "5. Read the settlement receipt from the `PAYMENT-RESPONSE` header (v2) or `X-PAYMENT-RESPONSE` (v1). You are charged only when the service answered successfully.",
    '6. Retry safely (x402 `payment-identifier` extension, declared in every 402\'s `extensions`): put an `id` of your own (16-128 letters, digits, `-`, `_`) in `extensions["payment-identifier"].info.id` of the payment. If the answer is lost, send the same request with the same `PAYMENT-SIGNATURE` again: you get the first answer and its receipt, without paying or running twice (answers are kept 10 minutes, up to 1 MiB each). The same id with a different payment or request is refused with 409 `payment_identifier_conflict`.',
    "",
    "Free routes (listed per service below) need no payment. A paid route may have its own price (listed with it below); its 402 asks that price.",
    "",
    "## Services",
    "",
  ];
  if (catalog.offers.length === 0) {
    lines.push("No service is available right now. Check back later.", "");
    return `${lines.join("\n")}\n`;
  }
  lines.push("| Service | Type | Model | Price | Network | Endpoint |", "|---|---|---|---|---|---|");
  for (const o of catalog.offers) {
    const p = o.payments[0];
    lines.push(
      `| ${cell(o.name)} | ${o.type} | ${cell(o.model ?? "—")} | ${cell(`${p.priceDisplay} ${p.unitDisplay}`)} | ${cell(p.networkName)} | ${o.endpoint} |`,
    );
  }
  lines.push("");
  for (const o of catalog.offers) {
    lines.push(`### ${cell(o.name)}`, "", cell(o.description), "");
    lines.push(`- Endpoint: \`${o.endpoint}\``);
    lines.push(`- Type: ${o.type}${o.model ? `, model \`${cell(o.model)}\`` : ""}`);
    lines.push(`- Pay with: ${paymentLine(o.payments)}`);
    if (o.endsAt)
      lines.push(
        o.ended
          ? `- **Ended** at ${o.endsAt}: new payments are refused (410 \`offer_ended\`); the route goes away shortly.`
          : `- Ends at ${o.endsAt}: after that new payments are refused (410 \`offer_ended\`).`,
      );
    if (o.type === "inference")
      lines.push(`- Call: OpenAI-compatible, \`POST ${o.endpoint}/v1/chat/completions\``);
    const free = o.routes.filter((r) => r.gate === "free");
    const paid = o.routes.filter((r) => r.gate === "paid");
    const auth = o.routes.filter((r) => r.gate === "auth");
    if (auth.length > 0)
      lines.push(
        `- Sign-in routes (a wallet signature, no payment): ${auth.map((r) => `\`${r.methods?.join(",") ?? "any"} ${o.path}${r.path}\``).join(", ")}. Without a credential they answer 401 with a sign-in-with-x challenge in \`PAYMENT-REQUIRED\` (\`extensions["sign-in-with-x"]\`); sign it (CAIP-122/SIWE, e.g. \`createSIWxPayload\` from \`@x402/extensions/sign-in-with-x\`) and send it base64-encoded in the \`SIGN-IN-WITH-X\` header. Each credential is good once, within 5 minutes.`,
      );
    if (free.length > 0)
      lines.push(
        `- Free routes: ${free.map((r) => `\`${r.methods?.join(",") ?? "any"} ${o.path}${r.path}\``).join(", ")}`,
      );
    if (paid.length > 0)
      lines.push(
        `- Paid routes: ${paid
          .map((r) => {
            const priced = o.pricedRoutes.find((p) => p.route === r.path);
            const own = priced ? ` (its own price: ${cell(paymentLine(priced.payments))})` : "";
            return `\`${r.methods?.join(",") ?? "any"} ${o.path}${r.path}\`${own}`;
          })
          .join(", ")}`,
      );
    lines.push(`- Everything else under \`${o.path}\` is paid, at the offer's price.`);
    lines.push(
      "",
      "Try it (expect a 402 with the payment requirements on a paid route):",
      "",
      "```sh",
      curlCommand(o.example),
      "```",
      "",
    );
  }
  return `${lines.join("\n")}\n`;
}
