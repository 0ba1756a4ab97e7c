/**
 * The catalog view of the publicly routed offers: one model that every catalog surface
 * (services.json, skill.md, openapi.json, agent-registration.json, the storefront) renders.
 */
import { type Caip2, chainIdOf, chainInfo, isTestnet, networkLabel } from "../../../api/chains";
import { drainPhase } from "../../../api/drain";
import { fromAtomic } from "../../../api/money";
import { chargePerRequest, pricedForRoute, schemeCharges } from "../../../api/pricing";
import type {
  AgentIdentitySpec,
  Asset,
  OfferScheme,
  Payment,
  ServiceOfferSpec,
} from "../../../api/resources";
import type { HeldOffer, RouteSpec } from "../routing";

export const DEFAULT_DISPLAY_NAME = "Obol Stack";

export interface CatalogPayment {
  readonly scheme: string;
  readonly network: string;
  readonly networkName: string;
  /** "Base Sepolia (testnet)": what a person reads (api/chains networkLabel). */
  readonly networkLabel: string;
  /** A public testnet: its tokens have no value. */
  readonly testnet: boolean;
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
  /** What one call costs, "0.00025 USDC"; "" when the price is invalid. */
  readonly perCallDisplay: string;
  /** The x402 schemes the 402 offers for this payment and how each charges (api/pricing.ts). */
  readonly schemes: readonly { scheme: OfferScheme; charge: string }[];
  readonly maxTimeoutSeconds: number;
}

/** A free route as a visitor reads it: a concrete path, never a glob. */
export interface FreeRoute {
  /** The public path, e.g. "/services/echo/free/" (a trailing "*" becomes "everything below"). */
  readonly path: string;
  /** True when the route covers every path below `path`. */
  readonly below: boolean;
  readonly methods?: readonly string[] | undefined;
  /** The offer's upstream health-check path (what the controller probes). */
  readonly healthCheck: boolean;
}

/** A paid route with its own price (and schemes) instead of the offer's. */
export interface PricedRoute {
  /** The route's pattern below the offer, as declared ("/premium", "/v2/*"). */
  readonly route: string;
  /** The public path, e.g. "/services/echo/premium" (a trailing "*" becomes "everything below"). */
  readonly path: string;
  readonly below: boolean;
  readonly methods?: readonly string[] | undefined;
  /** The offer's payment options at this route's price, primary first (what its 402 asks). */
  readonly payments: readonly [CatalogPayment, ...CatalogPayment[]];
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
  readonly freeRoutes: readonly FreeRoute[];
  /** Routes that need a wallet signature (x402 sign-in-with-x) instead of a payment. */
  readonly signInRoutes: readonly FreeRoute[];
  readonly pricedRoutes: readonly PricedRoute[];
  readonly category?: string | undefined;
  readonly weight: number;
  readonly example: ExampleRequest;
  /**
   * When the offer stops taking payments (RFC 3339, spec.endsAt or its deletion); absent when
   * it does not end. After it the offer answers 410 offer_ended until its route goes away.
   */
  readonly endsAt?: string | undefined;
  /** The end has passed: new payments are refused (the route goes away at the drain's end). */
  readonly ended: boolean;
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

function catalogPayment(p: Payment, schemes: readonly OfferScheme[]): CatalogPayment {
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
  const perCall = charge === undefined ? "" : `${fromAtomic(charge, p.asset.decimals)} ${p.asset.symbol}`;
  const perRequestCharge = perCall ? ` (${perCall} per request)` : "";
  return {
    scheme: p.scheme,
    network: p.network,
    networkName: networkName(p.network),
    networkLabel: networkLabel(p.network),
    testnet: isTestnet(p.network),
    chainId: chainIdOf(p.network as Caip2),
    payTo: p.payTo,
    asset: p.asset,
    priceRaw,
    priceUnit: perMTok ? "perMTok" : "perRequest",
    priceDisplay: `${priceRaw} ${p.asset.symbol}`,
    unitDisplay: perMTok ? `per 1M tokens${perRequestCharge}` : "per request",
    priceAtomicUnits: atomic,
    perCallDisplay: perCall,
    schemes: charge === undefined ? [] : schemeCharges(schemes, p),
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

export function catalogOffer(offer: HeldOffer, baseUrl: string, nowMs = Date.now()): CatalogOffer {
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
    payments: catalogPayments(spec),
    routes: spec.routes ?? [],
    freeRoutes: freeRoutes(spec.routes ?? [], spec.path, spec.upstream.healthPath),
    signInRoutes: freeRoutes(spec.routes ?? [], spec.path, spec.upstream.healthPath, "auth"),
    pricedRoutes: pricedRoutes(spec),
    category: spec.listing?.category,
    weight: spec.listing?.weight ?? 0,
    example: exampleRequest(offer, endpoint),
    endsAt: offer.end.endsAt === undefined ? undefined : new Date(offer.end.endsAt).toISOString(),
    ended: drainPhase(offer.end, nowMs) !== "open",
  };
}

/** The offer's payment options as catalogs list them, primary first. */
function catalogPayments(spec: ServiceOfferSpec): [CatalogPayment, ...CatalogPayment[]] {
  const schemes = spec.schemes ?? ["exact"];
  return [
    catalogPayment(spec.payment, schemes),
    ...(spec.payments ?? []).map((p) => catalogPayment(p, schemes)),
  ];
}

/** The paid routes with their own price, at that price (the same pricedForRoute as the 402). */
function pricedRoutes(spec: ServiceOfferSpec): PricedRoute[] {
  const prefix = spec.path === "/" ? "" : spec.path;
  return (spec.routes ?? [])
    .filter((r) => r.gate === "paid" && (r.price !== undefined || r.schemes !== undefined))
    .map((r) => {
      const below = r.path.endsWith("/*");
      return {
        route: r.path,
        path: `${prefix}${below ? r.path.slice(0, -1) : r.path}`,
        below,
        methods: r.methods,
        payments: catalogPayments(pricedForRoute(spec, r)),
      };
    });
}

/**
 * The free routes as concrete public paths: "/free/*" reads "/services/echo/free/" and
 * everything below it; a route other globs (a "*" inside a segment) keep their pattern.
 */
function freeRoutes(
  routes: readonly RouteSpec[],
  offerPath: string,
  healthPath: string,
  gate: "free" | "auth" = "free",
): FreeRoute[] {
  const prefix = offerPath === "/" ? "" : offerPath;
  return routes
    .filter((r) => r.gate === gate)
    .map((r) => {
      const below = r.path.endsWith("/*");
      const sub = below ? r.path.slice(0, -1) : r.path;
      return {
        path: `${prefix}${sub}`,
        below,
        methods: r.methods,
        healthCheck: r.path === healthPath,
      };
    });
}

/** Builds the catalog from the offers that are publicly routed right now (drained ones are not). */
export function buildCatalog(
  publicOffers: readonly HeldOffer[],
  baseUrl: string,
  identity?: AgentIdentitySpec,
  nowMs = Date.now(),
): Catalog {
  const base = baseUrl.replace(/\/+$/, "");
  return {
    baseUrl: base,
    displayName: identity?.name || DEFAULT_DISPLAY_NAME,
    description:
      identity?.description || "AI inference and HTTP APIs for agents, paid per request with x402.",
    identity,
    offers: publicOffers
      .filter((o) => drainPhase(o.end, nowMs) !== "gone")
      .map((o) => catalogOffer(o, base, nowMs)),
  };
}

/**
 * A shell command for the example request; every value is single-quoted for sh. One argument
 * per line (the URL too), so a narrow screen shows whole arguments and scrolls, never wraps.
 */
export function curlCommand(example: ExampleRequest): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  if (example.method === "POST") {
    return `curl -i -X POST \\\n  ${q(example.url)} \\\n  -H 'content-type: application/json' \\\n  -d ${q(example.body ?? "{}")}`;
  }
  return `curl -i ${q(example.url)}`;
}
