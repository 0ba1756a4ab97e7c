/**
 * The catalog view of the publicly routed offers: one model that every catalog surface
 * (services.json, skill.md, openapi.json, agent-registration.json, the storefront) renders.
 */
import { type Caip2, chainIdOf, chainInfo } from "../../../api/chains";
import { fromAtomic } from "../../../api/money";
import { chargePerRequest } from "../../../api/pricing";
import type { AgentIdentitySpec, Asset, Payment } from "../../../api/resources";
import type { HeldOffer, RouteSpec } from "../routing";

export const DEFAULT_DISPLAY_NAME = "Obol Stack";

export interface CatalogPayment {
  readonly scheme: string;
  readonly network: string;
  readonly networkName: string;
  /** Exact: serialized with exactJson. */
  readonly chainId: bigint;
  readonly payTo: string;
  readonly asset: Asset;
  readonly priceRaw: string;
  readonly priceUnit: "perRequest" | "perMTok";
  /** "0.001 USDC" */
  readonly priceDisplay: string;
  /** "per request" | "per 1M tokens (0.00025 USDC per request)" */
  readonly unitDisplay: string;
  /**
   * What one request costs in the token's smallest unit: exactly the 402's `amount` (v1
   * `maxAmountRequired`), from the same pricing function. "" when the price is invalid.
   */
  readonly priceAtomicUnits: string;
  readonly maxTimeoutSeconds: number;
}

export interface ExampleRequest {
  readonly method: "GET" | "POST";
  readonly url: string;
  readonly body?: string;
}

export interface CatalogOffer {
  readonly name: string;
  readonly namespace: string;
  readonly type: "inference" | "http";
  readonly description: string;
  readonly model?: string | undefined;
  readonly path: string;
  readonly endpoint: string;
  /** The offer's primary payment first, then its alternatives. */
  readonly payments: readonly [CatalogPayment, ...CatalogPayment[]];
  readonly routes: readonly RouteSpec[];
  readonly category?: string | undefined;
  readonly weight: number;
  readonly example: ExampleRequest;
}

export interface Catalog {
  readonly baseUrl: string;
  readonly displayName: string;
  readonly description: string;
  readonly identity?: AgentIdentitySpec | undefined;
  readonly offers: readonly CatalogOffer[];
}

export function networkName(network: string): string {
  return chainInfo(network as Caip2)?.displayName ?? network;
}

function catalogPayment(p: Payment): CatalogPayment {
  const perMTok = p.price.perMTok !== undefined && p.price.perRequest === undefined;
  const priceRaw = (perMTok ? p.price.perMTok : p.price.perRequest) ?? "0";
  let charge: bigint | undefined;
  try {
    charge = chargePerRequest(p);
  } catch {
    charge = undefined;
  }
  const atomic = charge === undefined ? "" : charge.toString();
  // A perMTok rate is charged per request as the price of PER_MTOK_BASIS_TOKENS tokens: say so,
  // so the listed rate and the 402's amount never look 1000x apart.
  const perRequestCharge =
    charge === undefined ? "" : ` (${fromAtomic(charge, p.asset.decimals)} ${p.asset.symbol} per request)`;
  return {
    scheme: p.scheme,
    network: p.network,
    networkName: networkName(p.network),
    chainId: chainIdOf(p.network as Caip2),
    payTo: p.payTo,
    asset: p.asset,
    priceRaw,
    priceUnit: perMTok ? "perMTok" : "perRequest",
    priceDisplay: `${priceRaw} ${p.asset.symbol}`,
    unitDisplay: perMTok ? `per 1M tokens${perRequestCharge}` : "per request",
    priceAtomicUnits: atomic,
    maxTimeoutSeconds: p.maxTimeoutSeconds,
  };
}

function exampleRequest(offer: HeldOffer, endpoint: string): ExampleRequest {
  if (offer.spec.type === "inference") {
    return {
      method: "POST",
      url: `${endpoint}/v1/chat/completions`,
      body: JSON.stringify({
        model: offer.spec.model?.name ?? "default",
        messages: [{ role: "user", content: "Hello!" }],
      }),
    };
  }
  // Show a paid call (a 402 with the price is the useful first answer): a concrete paid route,
  // else the offer's root, which is paid unless a route says otherwise.
  const paidRoute = (offer.spec.routes ?? []).find((r) => r.gate === "paid" && !r.path.includes("*"));
  return { method: "GET", url: `${endpoint}${paidRoute?.path ?? "/"}` };
}

export function catalogOffer(offer: HeldOffer, baseUrl: string): CatalogOffer {
  const spec = offer.spec;
  const endpoint = `${baseUrl}${spec.path}`;
  return {
    name: offer.name,
    namespace: offer.namespace,
    type: spec.type,
    description:
      spec.description ||
      (spec.type === "inference" && spec.model
        ? `${spec.model.name} inference, paid per call with x402`
        : `x402 payment-gated ${spec.type} service`),
    model: spec.model?.name,
    path: spec.path,
    endpoint,
    payments: [catalogPayment(spec.payment), ...(spec.payments ?? []).map(catalogPayment)],
    routes: spec.routes ?? [],
    category: spec.listing?.category,
    weight: spec.listing?.weight ?? 0,
    example: exampleRequest(offer, endpoint),
  };
}

/** Builds the catalog from the offers that are publicly routed right now. */
export function buildCatalog(
  publicOffers: readonly HeldOffer[],
  baseUrl: string,
  identity?: AgentIdentitySpec,
): Catalog {
  const base = baseUrl.replace(/\/+$/, "");
  return {
    baseUrl: base,
    displayName: identity?.name || DEFAULT_DISPLAY_NAME,
    description:
      identity?.description || "AI inference and HTTP APIs for agents, paid per request with x402.",
    identity,
    offers: publicOffers.map((o) => catalogOffer(o, base)),
  };
}

/** A shell command for the example request; every value is single-quoted for sh. */
export function curlCommand(example: ExampleRequest): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  if (example.method === "POST") {
    return `curl -i -X POST ${q(example.url)} \\\n  -H 'content-type: application/json' \\\n  -d ${q(example.body ?? "{}")}`;
  }
  return `curl -i ${q(example.url)}`;
}
