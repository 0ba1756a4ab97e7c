/**
 * `offers[]`: each entry becomes one ServiceOffer spec (api/resources.ts). Entries are validated
 * one by one, so a broken offer never hides the problems of another; names, paths and hostnames
 * are then checked across offers; finally each spec is checked against the ServiceOffer schema
 * the API server and the runtime apply.
 */
import { getAddress, isAddress, zeroAddress } from "viem";
import { z } from "zod";
import { type Caip2, chainInfo } from "../../api/chains";
import { isReservedPath, RESERVED_PATHS } from "../../api/contract";
import { type Asset, type Payment, type ServiceOfferSpec, serviceOfferSpecSchema } from "../../api/resources";

type RouteSpec = NonNullable<ServiceOfferSpec["routes"]>[number];
type RawOffer = z.infer<typeof rawOffer>;
type RawRoute = NonNullable<RawOffer["routes"]>[number];

import { amount, amountInput, DNS_LABEL, DNS_NAME, httpUrl, network } from "./fields";
import { acceptedAsStored, type Issues, parseSection, wholeNumber } from "./issues";
import type { OfferConfig } from "./types";

const OFFER_PATH = /^\/([a-zA-Z0-9_.~-]+(\/[a-zA-Z0-9_.~-]+)*)?$/;
/** What the gateway's route matcher accepts: the ServiceOffer schema's route pattern. */
const ROUTE_PATH = /^\/[a-zA-Z0-9/_.*-]*$/;

const rawAsset = z.strictObject({
  address: z.string(),
  symbol: z.string().default("USDC"),
  decimals: wholeNumber(0, 36, "the token's decimals, e.g. 6 for USDC or 18").default(6),
  transferMethod: z.enum(["eip3009", "permit2"]).default("eip3009"),
  eip712Name: z.string().optional(),
  eip712Version: z.string().default("2"),
  eip2612: z.boolean().optional(),
});

const rawPrice = z.strictObject({ perRequest: amountInput.optional(), perMTok: amountInput.optional() });

const rawPayment = z.strictObject({
  network: z.string(),
  payTo: z.string(),
  asset: rawAsset.optional(),
  price: rawPrice,
  maxTimeoutSeconds: wholeNumber(
    10,
    86_400,
    "how long a buyer's signed payment stays valid, in seconds; the default 300 suits most offers",
  ).default(300),
});

const rawOffer = z.strictObject({
  name: z.string(),
  type: z.enum(["inference", "http"]).default("http"),
  description: z.string().max(1024).optional(),
  model: z.strictObject({ name: z.string().min(1), runtime: z.string().optional() }).optional(),
  upstream: z.strictObject({
    service: z.string().optional(),
    namespace: z.string().optional(),
    port: wholeNumber(1, 65_535, "the Service port").optional(),
    url: z.string().optional(),
    healthPath: z.string().default("/health"),
  }),
  // Payments are validated one by one (below), so one bad entry does not hide the others.
  payment: z.unknown(),
  payments: z.array(z.unknown()).max(8).optional(),
  schemes: z
    .array(z.enum(["exact", "upto", "batch-settlement"]))
    .min(1)
    .optional(),
  channels: z
    .strictObject({
      // At most 600: claims must land within the payers' 900 s withdraw delay.
      claimIntervalSeconds: wholeNumber(5, 600, "seconds between claims").optional(),
      claimAmount: z.string().optional(),
      refundIdleSeconds: wholeNumber(60, 2_592_000, "idle seconds before a refund").optional(),
    })
    .optional(),
  path: z.string().optional(),
  hostname: z.string().optional(),
  routes: z
    .array(
      z.strictObject({
        path: z.string(),
        gate: z.enum(["paid", "free", "auth"]).default("paid"),
        methods: z.array(z.enum(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])).optional(),
        price: rawPrice.optional(),
        schemes: z
          .array(z.enum(["exact", "upto"]))
          .min(1)
          .optional(),
      }),
    )
    .optional(),
  limits: z
    .strictObject({
      rps: wholeNumber(
        0,
        undefined,
        "requests per second across all gateway replicas; 0 or absent means no limit",
      ).optional(),
      maxInFlight: wholeNumber(
        0,
        undefined,
        "concurrent requests across all gateway replicas; 0 or absent means no limit",
      ).optional(),
      perPayerRps: wholeNumber(
        0,
        undefined,
        "paid requests per second from one paying address across all gateway replicas; 0 or absent means no limit",
      ).optional(),
    })
    .optional(),
  listing: z
    .strictObject({ category: z.string().optional(), weight: z.number().int().optional() })
    .optional(),
  // Checked below, so the message can show the accepted form.
  endsAt: z.unknown().optional(),
  drainSeconds: wholeNumber(
    0,
    86_400,
    "seconds an ended or removed offer keeps its route while paid requests finish; default 60",
  ).optional(),
});

/** RFC 3339 with a zone, as the CRD's date-time format and the gateway expect. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** `endsAt` normalized to UTC (`2026-12-31T23:00:00.000Z`), or undefined with an issue. */
function endsAt(input: unknown, at: string, issues: Issues): string | undefined {
  // YAML turns an unquoted timestamp into a Date.
  const text = input instanceof Date ? input.toISOString() : input;
  const ms = typeof text === "string" && RFC3339.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) {
    issues.add(
      at,
      `${JSON.stringify(text)} is not a time: use RFC 3339 with a zone, e.g. "2026-12-31T23:00:00Z"`,
    );
    return undefined;
  }
  return new Date(ms).toISOString();
}

export const offersSchema = z.array(z.unknown()).default([]);

/**
 * Validates every offer; returns the valid ones and the networks the offers are paid on.
 * `gatewayReplicas`: each replica enforces 1/N of an offer's limits, at least 1 (ADR 0003), so a
 * limit below N would let the replicas together exceed it.
 */
export function offers(
  inputs: readonly unknown[],
  namespace: string,
  issues: Issues,
  gatewayReplicas = 1,
): { offers: OfferConfig[]; networks: Set<Caip2> } {
  const out: OfferConfig[] = [];
  const networks = new Set<Caip2>();
  const names = new Map<string, number>();
  const paths = new Map<string, number>();
  const hostnames = new Map<string, number>();
  inputs.forEach((input, i) => {
    const at = `offers[${i}]`;
    const o = parseSection(rawOffer, input, at, issues);
    if (!o) return;
    if (!DNS_LABEL.test(o.name) || o.name.length > 52) {
      issues.add(
        `${at}.name`,
        `"${o.name}" must be a DNS label of at most 52 characters (lowercase letters, digits, '-')`,
      );
    }
    const sameName = names.get(o.name);
    if (sameName !== undefined) {
      issues.add(
        `${at}.name`,
        `"${o.name}" is already used by offers[${sameName}]; offer names must be unique`,
      );
    }
    names.set(o.name, i);

    const path = offerPath(o.path, o.name, at, issues);
    if (path !== undefined) {
      const clash = [...paths.entries()].find(
        ([p]) => p === path || path.startsWith(`${p}/`) || p.startsWith(`${path}/`),
      );
      if (clash) {
        issues.add(
          `${at}.path`,
          `"${path}" overlaps "${clash[0]}" of offers[${clash[1]}]; give each offer its own path`,
        );
      }
      paths.set(path, i);
    }
    if (o.hostname !== undefined) {
      if (!DNS_NAME.test(o.hostname)) issues.add(`${at}.hostname`, `"${o.hostname}" is not a DNS name`);
      const sameHost = hostnames.get(o.hostname);
      if (sameHost !== undefined)
        issues.add(`${at}.hostname`, `"${o.hostname}" is already used by offers[${sameHost}]`);
      hostnames.set(o.hostname, i);
    }

    for (const key of ["rps", "maxInFlight", "perPayerRps"] as const) {
      const limit = o.limits?.[key];
      if (limit !== undefined && limit > 0 && limit < gatewayReplicas) {
        issues.add(
          `${at}.limits.${key}`,
          `${limit} is below gateway.replicas (${gatewayReplicas}): each replica enforces its share of the limit and at least 1, so together they would allow ${gatewayReplicas}; set it to at least ${gatewayReplicas}, or lower gateway.replicas`,
        );
      }
    }

    const upstreamOk = upstream(o.upstream, `${at}.upstream`, issues);
    if (o.type === "inference" && !o.model) {
      issues.add(`${at}.model`, "an inference offer needs model.name (the model buyers ask for)");
    }
    o.routes?.forEach((r, j) => {
      if (!ROUTE_PATH.test(r.path)) {
        issues.add(
          `${at}.routes[${j}].path`,
          `"${r.path}" must start with / and use letters, digits and /_.-* only, e.g. /health or /v1/*`,
        );
      }
    });

    const payments = [o.payment, ...(o.payments ?? [])].map((p, j) =>
      payment(p, j === 0 ? `${at}.payment` : `${at}.payments[${j - 1}]`, issues),
    );
    for (const p of payments) if (p) networks.add(p.network as Caip2);
    schemesFit(o.schemes, o.type, payments, "the offer", `${at}.schemes`, issues);
    const channels = channelTerms(o, payments, at, issues);
    if (channels && gatewayReplicas > 1)
      issues.add(
        `${at}.schemes`,
        `"batch-settlement" keeps channel state on one gateway's volume, and gateway.replicas is ${gatewayReplicas}: two replicas could each accept the same voucher. Set gateway.replicas to 1, or remove "batch-settlement"`,
      );
    const routes = o.routes?.map((r, j) => route(r, o, payments, `${at}.routes[${j}]`, issues));
    const end = o.endsAt === undefined ? undefined : endsAt(o.endsAt, `${at}.endsAt`, issues);
    const [primary, ...extra] = payments;
    if (
      !primary ||
      !extra.every((p): p is Payment => p !== undefined) ||
      path === undefined ||
      !upstreamOk ||
      routes?.some((r) => r === undefined) ||
      (o.endsAt !== undefined && end === undefined)
    )
      return;

    const spec: ServiceOfferSpec = {
      type: o.type,
      ...(o.description ? { description: o.description } : {}),
      ...(o.model ? { model: o.model } : {}),
      upstream: {
        ...o.upstream,
        ...(o.upstream.service ? { namespace: o.upstream.namespace ?? namespace } : {}),
      },
      payment: primary,
      ...(extra.length > 0 ? { payments: extra } : {}),
      ...(o.schemes ? { schemes: o.schemes } : {}),
      ...(channels ? { channels } : {}),
      path,
      ...(o.hostname ? { hostname: o.hostname } : {}),
      ...(routes ? { routes: routes as RouteSpec[] } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
      ...(o.listing ? { listing: o.listing } : {}),
      ...(end ? { endsAt: end } : {}),
      ...(o.drainSeconds !== undefined ? { drainSeconds: o.drainSeconds } : {}),
    };
    if (acceptedAsStored(serviceOfferSpecSchema, spec, at, "ServiceOffer", issues))
      out.push({ name: o.name, spec });
  });
  return { offers: out, networks };
}

/**
 * `schemes` (the offer's, or a route's) against the prices they charge: "upto" meters tokens,
 * so it needs an inference offer and a perMTok price on every payment option.
 */
function schemesFit(
  schemes: readonly string[] | undefined,
  type: RawOffer["type"],
  payments: readonly (Pick<Payment, "price"> | undefined)[],
  whose: string,
  at: string,
  issues: Issues,
): void {
  if (schemes?.includes("upto")) {
    if (type !== "inference")
      issues.add(
        at,
        '"upto" meters tokens and needs type: inference; remove "upto" or make this an inference offer',
      );
    else if (payments.some((p) => p !== undefined && p.price.perMTok === undefined))
      issues.add(
        at,
        `"upto" charges per token: every payment needs price.perMTok; remove "upto" or price ${whose} perMTok`,
      );
  }
  if (schemes && new Set(schemes).size !== schemes.length) issues.add(at, "list each scheme once");
}

/**
 * A route as stored. Its own `price` replaces every payment option's price (api/pricing.ts
 * pricedForRoute), so it must be exact in each option's token; its `schemes` (or the offer's)
 * must fit that price. A free route is not charged, so it takes neither.
 */
function route(
  r: RawRoute,
  o: RawOffer,
  payments: readonly (Payment | undefined)[],
  at: string,
  issues: Issues,
): RouteSpec | undefined {
  const { price: rawRoutePrice, schemes, ...rest } = r;
  if (r.gate !== "paid" && (rawRoutePrice !== undefined || schemes !== undefined)) {
    issues.add(
      `${at}.${rawRoutePrice !== undefined ? "price" : "schemes"}`,
      `a ${r.gate === "auth" ? "sign-in" : "free"} route is not charged: remove price and schemes, or set gate: paid`,
    );
    return undefined;
  }
  let price: Payment["price"] | undefined;
  if (rawRoutePrice !== undefined) {
    const decimals = Math.min(...payments.filter((p) => p !== undefined).map((p) => p.asset.decimals));
    price = priceOf(rawRoutePrice, `${at}.price`, issues, Number.isFinite(decimals) ? decimals : undefined);
    if (!price) return undefined;
  }
  const effective = payments.map((p) => (p && price ? { ...p, price } : p));
  const before = issues.list.length;
  if (price !== undefined || schemes !== undefined)
    schemesFit(
      schemes ?? o.schemes,
      o.type,
      effective,
      "this route",
      schemes !== undefined ? `${at}.schemes` : `${at}.price`,
      issues,
    );
  if (issues.list.length !== before) return undefined;
  return { ...rest, ...(price ? { price } : {}), ...(schemes ? { schemes } : {}) };
}

/** `{perRequest}` or `{perMTok}`, each a positive amount exact in `decimals`. */
function priceOf(
  input: z.infer<typeof rawPrice>,
  at: string,
  issues: Issues,
  decimals: number | undefined,
): Payment["price"] | undefined {
  const { perRequest, perMTok } = input;
  const oneKind = (perRequest === undefined) !== (perMTok === undefined);
  if (!oneKind) issues.add(at, "set exactly one of price.perRequest or price.perMTok");
  const price: Payment["price"] = {};
  let ok = oneKind;
  for (const [key, value] of [
    ["perRequest", perRequest],
    ["perMTok", perMTok],
  ] as const) {
    if (value === undefined) continue;
    const normalized = amount(value, `${at}.${key}`, issues, decimals);
    if (normalized) price[key] = normalized;
    else ok = false;
  }
  return ok ? price : undefined;
}

/**
 * The batch-settlement terms: only with the scheme, per-request prices (a voucher adds one fixed
 * price) and EIP-3009 assets (deposits go through x402's ERC-3009 deposit collector).
 */
function channelTerms(
  o: z.infer<typeof rawOffer>,
  payments: (Payment | undefined)[],
  at: string,
  issues: Issues,
): ServiceOfferSpec["channels"] {
  const offered = o.schemes?.includes("batch-settlement") ?? false;
  if (!offered) {
    if (o.channels)
      issues.add(
        `${at}.channels`,
        'applies to the "batch-settlement" scheme only: add it to schemes or remove channels',
      );
    return undefined;
  }
  payments.forEach((p, j) => {
    if (!p) return;
    const where = j === 0 ? `${at}.payment` : `${at}.payments[${j - 1}]`;
    if (p.price.perRequest === undefined)
      issues.add(
        `${at}.schemes`,
        `"batch-settlement" charges a fixed price per request: ${where} needs price.perRequest; remove "batch-settlement" or price it perRequest`,
      );
    if (p.asset.transferMethod !== "eip3009")
      issues.add(
        `${at}.schemes`,
        `"batch-settlement" deposits with an EIP-3009 authorization: ${where} pays in ${p.asset.symbol} (${p.asset.transferMethod}); remove "batch-settlement" or use an EIP-3009 asset such as USDC`,
      );
  });
  const c = o.channels ?? {};
  let claimAmount: string | undefined;
  if (c.claimAmount !== undefined) {
    const decimals = payments[0]?.asset.decimals;
    claimAmount = amount(c.claimAmount, `${at}.channels.claimAmount`, issues, decimals);
    if (claimAmount !== undefined && Number(claimAmount) === 0) {
      issues.add(`${at}.channels.claimAmount`, 'must be above 0, e.g. "1" (claim once 1 token is owed)');
      claimAmount = undefined;
    }
  }
  return {
    claimIntervalSeconds: c.claimIntervalSeconds ?? 60,
    refundIdleSeconds: c.refundIdleSeconds ?? 3600,
    ...(claimAmount ? { claimAmount } : {}),
  };
}

function offerPath(input: string | undefined, name: string, at: string, issues: Issues): string | undefined {
  const path = (input ?? `/services/${name}`).replace(/\/+$/, "") || "/";
  if (!OFFER_PATH.test(path)) {
    issues.add(
      `${at}.path`,
      `"${input}" must be an absolute path of letters, digits and -_.~ segments, e.g. /services/${name}`,
    );
    return undefined;
  }
  if (isReservedPath(path)) {
    issues.add(
      `${at}.path`,
      `"${path}" is reserved for the gateway's own pages (${RESERVED_PATHS.join(", ")}); choose a path such as /services/${name}`,
    );
    return undefined;
  }
  return path;
}

function upstream(u: z.infer<typeof rawOffer>["upstream"], at: string, issues: Issues): boolean {
  const before = issues.list.length;
  if (!!u.url === !!u.service) {
    issues.add(at, "set exactly one of upstream.service (a Kubernetes Service) or upstream.url");
  }
  if (u.url) httpUrl(u.url, `${at}.url`, issues, "an http(s) URL");
  if (u.service && (!DNS_LABEL.test(u.service) || u.service.length > 63)) {
    issues.add(
      `${at}.service`,
      `"${u.service}" is not a Service name (a DNS label of at most 63 characters)`,
    );
  }
  if (u.service && u.port === undefined)
    issues.add(`${at}.port`, "required with upstream.service (the Service port)");
  if (!u.healthPath.startsWith("/")) issues.add(`${at}.healthPath`, `"${u.healthPath}" must start with /`);
  return issues.list.length === before;
}

function payment(input: unknown, at: string, issues: Issues): Payment | undefined {
  const p = parseSection(rawPayment, input, at, issues);
  if (!p) return undefined;
  const net = network(p.network, `${at}.network`, issues);
  const payTo = payee(p.payTo, `${at}.payTo`, issues);
  const asset = paymentAsset(p.asset, net, at, issues);

  const price = priceOf(p.price, `${at}.price`, issues, asset?.decimals);
  if (!net || !payTo || !asset || !price) return undefined;
  return { scheme: "exact", network: net, payTo, asset, price, maxTimeoutSeconds: p.maxTimeoutSeconds };
}

function payee(input: string, at: string, issues: Issues): `0x${string}` | undefined {
  if (!isAddress(input, { strict: false })) {
    issues.add(at, `"${input}" is not an address: use 0x followed by 40 hex digits`);
    return undefined;
  }
  const checksummed = getAddress(input);
  if (checksummed === zeroAddress) {
    issues.add(
      at,
      "is the zero address; payments sent there are burned. Use the wallet that should receive them",
    );
    return undefined;
  }
  if (input !== input.toLowerCase() && input !== checksummed) {
    issues.add(
      at,
      `"${input}" has a bad EIP-55 checksum (a typo?); the checksummed form of what you wrote is ${checksummed}`,
    );
    return undefined;
  }
  return checksummed;
}

function paymentAsset(
  a: z.infer<typeof rawAsset> | undefined,
  net: Caip2 | undefined,
  at: string,
  issues: Issues,
): Asset | undefined {
  if (!a) {
    if (!net) return undefined;
    const usdc = chainInfo(net)?.usdc;
    if (!usdc) {
      issues.add(
        `${at}.asset`,
        `${net} has no default token: set asset.address, asset.decimals and asset.eip712Name`,
      );
      return undefined;
    }
    return { ...usdc };
  }
  if (!isAddress(a.address, { strict: false })) {
    issues.add(`${at}.asset.address`, `"${a.address}" is not an address`);
    return undefined;
  }
  if (!a.eip712Name && a.transferMethod === "eip3009") {
    issues.add(
      `${at}.asset.eip712Name`,
      "required with a custom EIP-3009 asset: the token's EIP-712 domain name (its name() for most tokens); or set transferMethod: permit2 for a plain ERC-20",
    );
    return undefined;
  }
  // Permit2 signatures use Permit2's own domain: the token's name is informational only.
  const { eip2612, ...rest } = a;
  return {
    ...rest,
    address: getAddress(a.address),
    eip712Name: a.eip712Name ?? a.symbol,
    ...(eip2612 !== undefined ? { eip2612 } : {}),
  };
}
