/**
 * `/.well-known/x402`: the origin's x402 discovery document, so a crawler or an agent finds the
 * paid resources without paying first. The shape is the discovery document x402 crawlers read
 * (x402scan's): `{version: 1, resources: [absolute URLs], instructions?}`. Each listed URL
 * answers 402 with its terms and the bazaar extension (its input and output).
 */
import type { Catalog, CatalogOffer } from "./model";

export interface X402DiscoveryDocument {
  readonly version: 1;
  readonly resources: readonly string[];
  readonly instructions: string;
}

/** The offer's paid resources: the example call, then each concrete (glob-free) paid route. */
function paidResources(o: CatalogOffer): string[] {
  const routes = o.routes
    .filter((r) => r.gate === "paid" && !r.path.includes("*"))
    .map((r) => `${o.endpoint}${r.path}`);
  return [o.example.url, ...routes];
}

export function renderX402Discovery(catalog: Catalog): X402DiscoveryDocument {
  return {
    version: 1,
    // An ended offer refuses payments: nothing to discover there.
    resources: [...new Set(catalog.offers.filter((o) => !o.ended).flatMap(paidResources))],
    instructions: `Each resource answers an unpaid request with 402 and its terms (PAYMENT-REQUIRED; the bazaar extension describes its input and output); pay with an x402 client. Prices, networks and free routes: ${catalog.baseUrl}/api/services.json and ${catalog.baseUrl}/openapi.json.`,
  };
}
