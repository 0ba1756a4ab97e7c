/** `/api/services.json`: the machine-readable service catalog (schemaVersion "1"). */
import type { OfferScheme } from "../../../api/resources";
import type { Catalog, CatalogPayment } from "./model";

export interface ServicesJson {
  schemaVersion: "1";
  displayName: string;
  description: string;
  baseUrl: string;
  links: { skill: string; openapi: string; registration: string };
  services: ServiceEntry[];
}

export interface ServiceEntry {
  name: string;
  namespace: string;
  type: "inference" | "http";
  description: string;
  model?: string;
  endpoint: string;
  path: string;
  price: string;
  priceRaw: string;
  priceUnit: "perRequest" | "perMTok";
  priceAtomicUnits: string;
  payTo: string;
  network: string;
  networkName: string;
  chainId: bigint;
  asset: {
    address: string;
    symbol: string;
    decimals: number;
    transferMethod: string;
    eip712Domain: { name: string; version: string };
  };
  payments: PaymentEntry[];
  /**
   * `payments`: a route with its own price lists the offer's payment options at that price.
   * `auth`: a wallet signature (x402 sign-in-with-x), answered 401 with the challenge without one.
   */
  routes: { path: string; gate: "paid" | "free" | "auth"; methods?: string[]; payments?: PaymentEntry[] }[];
  category?: string;
  weight: number;
  example: { method: string; url: string; body?: string };
  /** When the offer stops taking payments (RFC 3339); absent when it does not end. */
  endsAt?: string;
  /** Past endsAt: payments are refused with 410 offer_ended until the route goes away. */
  ended?: true;
}

interface PaymentEntry {
  scheme: string;
  network: string;
  networkName: string;
  chainId: bigint;
  payTo: string;
  asset: ServiceEntry["asset"];
  priceRaw: string;
  priceUnit: "perRequest" | "perMTok";
  priceAtomicUnits: string;
  maxTimeoutSeconds: number;
  /** The x402 schemes the 402 offers for this payment and how each charges. */
  schemes: { scheme: OfferScheme; charge: string }[];
}

function assetEntry(p: CatalogPayment): ServiceEntry["asset"] {
  return {
    address: p.asset.address,
    symbol: p.asset.symbol,
    decimals: p.asset.decimals,
    transferMethod: p.asset.transferMethod,
    eip712Domain: { name: p.asset.eip712Name, version: p.asset.eip712Version },
  };
}

function paymentEntry(p: CatalogPayment): PaymentEntry {
  return {
    scheme: p.scheme,
    network: p.network,
    networkName: p.networkName,
    chainId: p.chainId,
    payTo: p.payTo,
    asset: assetEntry(p),
    priceRaw: p.priceRaw,
    priceUnit: p.priceUnit,
    priceAtomicUnits: p.priceAtomicUnits,
    maxTimeoutSeconds: p.maxTimeoutSeconds,
    schemes: p.schemes.map((x) => ({ ...x })),
  };
}

export function renderServicesJson(catalog: Catalog): ServicesJson {
  return {
    schemaVersion: "1",
    displayName: catalog.displayName,
    description: catalog.description,
    baseUrl: catalog.baseUrl,
    links: {
      skill: `${catalog.baseUrl}/skill.md`,
      openapi: `${catalog.baseUrl}/openapi.json`,
      registration: `${catalog.baseUrl}/.well-known/agent-registration.json`,
    },
    services: catalog.offers.map((o) => {
      const primary = o.payments[0];
      const entry: ServiceEntry = {
        name: o.name,
        namespace: o.namespace,
        type: o.type,
        description: o.description,
        endpoint: o.endpoint,
        path: o.path,
        price: `${primary.priceDisplay} ${primary.unitDisplay}`,
        priceRaw: primary.priceRaw,
        priceUnit: primary.priceUnit,
        priceAtomicUnits: primary.priceAtomicUnits,
        payTo: primary.payTo,
        network: primary.network,
        networkName: primary.networkName,
        chainId: primary.chainId,
        asset: assetEntry(primary),
        payments: o.payments.map(paymentEntry),
        routes: o.routes.map((r) => {
          const priced = o.pricedRoutes.find((p) => p.route === r.path);
          return {
            path: r.path,
            gate: r.gate,
            ...(r.methods ? { methods: [...r.methods] } : {}),
            ...(priced ? { payments: priced.payments.map(paymentEntry) } : {}),
          };
        }),
        weight: o.weight,
        example: { ...o.example },
      };
      if (o.model) entry.model = o.model;
      if (o.category) entry.category = o.category;
      if (o.endsAt) entry.endsAt = o.endsAt;
      if (o.ended) entry.ended = true;
      return entry;
    }),
  };
}

/** JSON Schema (draft 2020-12) of services.json, for consumers and tests. */
export const SERVICES_JSON_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  required: ["schemaVersion", "displayName", "baseUrl", "services"],
  properties: {
    schemaVersion: { const: "1" },
    displayName: { type: "string", minLength: 1 },
    description: { type: "string" },
    baseUrl: { type: "string", pattern: "^https?://" },
    links: {
      type: "object",
      required: ["skill", "openapi", "registration"],
      properties: {
        skill: { type: "string" },
        openapi: { type: "string" },
        registration: { type: "string" },
      },
    },
    services: {
      type: "array",
      items: {
        type: "object",
        required: [
          "name",
          "type",
          "endpoint",
          "price",
          "priceRaw",
          "priceUnit",
          "priceAtomicUnits",
          "payTo",
          "network",
          "chainId",
          "asset",
          "payments",
        ],
        properties: {
          name: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$" },
          type: { enum: ["inference", "http"] },
          endpoint: { type: "string", pattern: "^https?://" },
          priceRaw: { type: "string", pattern: "^(0|[1-9][0-9]*)(\\.[0-9]+)?$" },
          priceUnit: { enum: ["perRequest", "perMTok"] },
          priceAtomicUnits: { type: "string", pattern: "^[0-9]+$" },
          payTo: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" },
          network: { type: "string", pattern: "^eip155:[1-9][0-9]*$" },
          chainId: { type: "integer", minimum: 1 },
          asset: {
            type: "object",
            required: ["address", "symbol", "decimals"],
            properties: {
              address: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" },
              symbol: { type: "string" },
              decimals: { type: "integer", minimum: 0 },
            },
          },
          payments: { type: "array", minItems: 1 },
          routes: {
            type: "array",
            items: {
              type: "object",
              required: ["path", "gate"],
              properties: {
                gate: { enum: ["paid", "free", "auth"] },
                payments: { type: "array", minItems: 1 },
              },
            },
          },
          endsAt: { type: "string", format: "date-time" },
          ended: { const: true },
        },
      },
    },
  },
} as const;
