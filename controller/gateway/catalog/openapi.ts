/** `/openapi.json`: an OpenAPI 3.1 description of the offers' paths and their 402 responses. */
import type { Catalog, CatalogOffer } from "./model";

type Json = Record<string, unknown>;

const DEFAULT_METHODS = ["get", "post"] as const;

function pathParamFor(route: string): { path: string; wildcard: boolean } {
  if (!route.includes("*")) return { path: route, wildcard: false };
  const prefix = route.slice(0, route.indexOf("*")).replace(/\/+$/, "");
  return { path: `${prefix}/{subpath}`, wildcard: true };
}

function operation(
  o: CatalogOffer,
  gate: "paid" | "free" | "auth",
  wildcard: boolean,
  payments: CatalogOffer["payments"],
): Json {
  const p = payments[0];
  const op: Json = {
    summary: `${o.name}${gate === "free" ? " (free)" : gate === "auth" ? " (sign in with a wallet, no payment)" : ` — ${p.priceDisplay} ${p.unitDisplay}`}`,
    description: o.description,
    tags: [o.name],
    responses: {
      "200": { description: "The upstream service's response, streamed unchanged." },
      ...(gate === "paid"
        ? {
            "402": {
              description: "Payment required: pay with x402 and repeat the request.",
              headers: {
                "PAYMENT-REQUIRED": {
                  description: "x402 v2 payment requirements, base64-encoded JSON",
                  schema: { type: "string" },
                },
              },
              content: { "application/json": { schema: { $ref: "#/components/schemas/PaymentRequired" } } },
            },
          }
        : {}),
      ...(gate === "auth"
        ? {
            "401": {
              description:
                "Sign-in required: sign the challenge (x402 sign-in-with-x, CAIP-122) and repeat the request with the SIGN-IN-WITH-X header.",
              headers: {
                "PAYMENT-REQUIRED": {
                  description:
                    'x402 v2 PaymentRequired with accepts [] and extensions["sign-in-with-x"] (the challenge), base64-encoded JSON',
                  schema: { type: "string" },
                },
              },
            },
          }
        : {}),
      "404": { description: "Not found: the offer is not available." },
      "502": { description: "The upstream service did not answer." },
    },
  };
  if (gate === "auth") op.security = [{ signInWithX: [] }];
  if (wildcard) {
    op.parameters = [
      {
        name: "subpath",
        in: "path",
        required: true,
        description: "Any path below this prefix (may contain slashes).",
        schema: { type: "string" },
      },
    ];
  }
  if (gate === "paid") {
    op["x-payment-info"] = {
      scheme: p.scheme,
      price: p.priceRaw,
      priceUnit: p.priceUnit,
      amount: p.priceAtomicUnits,
      network: p.network,
      asset: p.asset.address,
      symbol: p.asset.symbol,
      payTo: p.payTo,
      // The x402 schemes the 402 offers and how each charges ("exact: …", "upto: …").
      schemes: p.schemes.map((s) => ({ scheme: s.scheme, charge: s.charge })),
    };
  }
  if (o.type === "inference") {
    op.requestBody = {
      required: false,
      content: {
        "application/json": { schema: { type: "object", description: "OpenAI-compatible request body" } },
      },
    };
  }
  return op;
}

export function renderOpenApi(catalog: Catalog): Json {
  const paths: Record<string, Json> = {};
  for (const o of catalog.offers) {
    const entries: {
      path: string;
      gate: "paid" | "free" | "auth";
      methods: readonly string[];
      wildcard: boolean;
      payments: CatalogOffer["payments"];
    }[] = [];
    for (const r of o.routes) {
      const { path, wildcard } = pathParamFor(r.path);
      entries.push({
        path: `${o.path}${path === "/" ? "" : path}` || "/",
        gate: r.gate,
        methods: r.methods ?? DEFAULT_METHODS,
        wildcard,
        // A route with its own price documents that price.
        payments: o.pricedRoutes.find((p) => p.route === r.path)?.payments ?? o.payments,
      });
    }
    // Everything not matched by a declared route is paid.
    entries.push({
      path: `${o.path}/{subpath}`,
      gate: "paid",
      methods: DEFAULT_METHODS,
      wildcard: true,
      payments: o.payments,
    });
    for (const e of entries) {
      const item = paths[e.path] ?? {};
      paths[e.path] = item;
      for (const m of e.methods) {
        const method = m.toLowerCase();
        if (!(method in item)) item[method] = operation(o, e.gate, e.wildcard, e.payments);
      }
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: catalog.displayName,
      version: "1.0.0",
      description: `${catalog.description}\n\nPaid operations answer 402 with x402 payment requirements; see ${catalog.baseUrl}/skill.md.`,
    },
    servers: [{ url: catalog.baseUrl }],
    tags: catalog.offers.map((o) => ({ name: o.name, description: o.description })),
    paths,
    components: {
      securitySchemes: {
        signInWithX: {
          type: "apiKey",
          in: "header",
          name: "SIGN-IN-WITH-X",
          description:
            "A wallet's signature of the route's sign-in-with-x challenge (x402 extension, CAIP-122/SIWE), base64-encoded JSON; the 401 carries the challenge",
        },
      },
      schemas: {
        PaymentRequired: {
          type: "object",
          required: ["x402Version", "accepts"],
          properties: {
            x402Version: { type: "integer" },
            error: { type: "string" },
            resource: { type: "object" },
            accepts: { type: "array", items: { $ref: "#/components/schemas/PaymentRequirements" } },
          },
        },
        PaymentRequirements: {
          type: "object",
          required: ["scheme", "network", "asset", "payTo"],
          properties: {
            scheme: { type: "string" },
            network: { type: "string", description: "CAIP-2 network (v2) or legacy name (v1)" },
            amount: { type: "string", description: "Atomic units (v2)" },
            maxAmountRequired: { type: "string", description: "Atomic units (v1)" },
            asset: { type: "string" },
            payTo: { type: "string" },
            maxTimeoutSeconds: { type: "integer" },
            extra: { type: "object" },
          },
        },
      },
    },
  };
}
