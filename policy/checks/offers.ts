/** Checks on ServiceOffer custom resources (obol.org/v1alpha1): payee, price, chain, path. */
import { payeeProblem } from "./address";
import { MAINNET_NETWORKS, RESERVED_PATHS } from "./constants";
import { compareDecimal, isDecimal } from "./decimal";
import { asArray, asObject, asString, at, isUnknown, type Json, type JsonObject } from "./values";

export interface PriceLimits {
  /** Highest price per request, in token units (e.g. "10" USDC). */
  maxPricePerRequest: string;
  /** Highest price per million tokens, in token units. */
  maxPricePerMTok: string;
}

interface PaymentAt {
  /** Where the payment sits in the resource, e.g. `spec.payments[0]`. */
  path: string;
  payment: JsonObject;
}

/** `ServiceOffer "name"`, for messages. */
export function offerLabel(props: JsonObject): string {
  return `ServiceOffer "${asString(at(props, "metadata", "name")) ?? "?"}"`;
}

function payments(props: JsonObject): PaymentAt[] {
  const out: PaymentAt[] = [];
  const primary = asObject(at(props, "spec", "payment"));
  if (primary) out.push({ path: "spec.payment", payment: primary });
  asArray(at(props, "spec", "payments")).forEach((p: Json, i: number) => {
    const payment = asObject(p);
    if (payment) out.push({ path: `spec.payments[${i}]`, payment });
  });
  return out;
}

export function checkPayTo(props: JsonObject): string[] {
  const label = offerLabel(props);
  const problems: string[] = [];
  for (const { path, payment } of payments(props)) {
    const payTo = payment.payTo;
    if (isUnknown(payTo)) continue;
    const address = asString(payTo);
    if (address === undefined) {
      problems.push(`${label}: ${path}.payTo is missing; every payment needs the wallet that receives it`);
      continue;
    }
    const problem = payeeProblem(address);
    if (problem) problems.push(`${label}: ${path}.payTo ${problem}`);
  }
  return problems;
}

/** Every place a price is set: the payment options, and the routes with their own price. */
function priced(props: JsonObject): PaymentAt[] {
  const routes: PaymentAt[] = [];
  asArray(at(props, "spec", "routes")).forEach((r: Json, i: number) => {
    const route = asObject(r);
    if (route && route.price !== undefined) routes.push({ path: `spec.routes[${i}]`, payment: route });
  });
  return [...payments(props), ...routes];
}

export function checkPrices(props: JsonObject, limits: PriceLimits): string[] {
  const label = offerLabel(props);
  const problems: string[] = [];
  for (const { path, payment } of priced(props)) {
    const price = asObject(payment.price);
    const entries = (["perRequest", "perMTok"] as const).filter((k) => price?.[k] !== undefined);
    if (entries.length === 0 && !isUnknown(payment.price)) {
      problems.push(`${label}: ${path}.price sets neither perRequest nor perMTok`);
    }
    for (const key of entries) {
      const raw = price?.[key];
      if (isUnknown(raw)) continue;
      const value = asString(raw);
      const where = `${label}: ${path}.price.${key}`;
      if (value === undefined || !isDecimal(value)) {
        problems.push(`${where} ${JSON.stringify(raw)} is not a decimal amount written as a string`);
      } else if (compareDecimal(value, "0") <= 0) {
        problems.push(`${where} is ${value}; prices must be positive (use a free route to give access away)`);
      } else {
        const max = key === "perRequest" ? limits.maxPricePerRequest : limits.maxPricePerMTok;
        const limitName = key === "perRequest" ? "maxPricePerRequest" : "maxPricePerMTok";
        if (compareDecimal(value, max) > 0) {
          problems.push(
            `${where} is ${value}, above the ceiling of ${max} (policy config ${limitName}); a misplaced decimal point? Raise the ceiling if the price is intended`,
          );
        }
      }
    }
  }
  return problems;
}

function networks(props: JsonObject): { path: string; network: string }[] {
  return payments(props)
    .map(({ path, payment }) => ({ path: `${path}.network`, network: asString(payment.network) }))
    .filter((n): n is { path: string; network: string } => n.network !== undefined);
}

export function checkNetworkAllowed(props: JsonObject, allowed: readonly string[]): string[] {
  const label = offerLabel(props);
  return networks(props)
    .filter(({ network }) => !allowed.includes(network))
    .map(
      ({ path, network }) =>
        `${label}: ${path} ${network} is not in the allowed networks (${allowed.join(", ")}); add it to the policy config allowedNetworks if it is intended`,
    );
}

export function checkMainnetOptIn(props: JsonObject, allowMainnet: boolean): string[] {
  if (allowMainnet) return [];
  const label = offerLabel(props);
  return networks(props)
    .filter(({ network }) => MAINNET_NETWORKS.includes(network))
    .map(
      ({ path, network }) =>
        `${label}: ${path} ${network} is a mainnet, where payments are real money; opt in with the policy config allowMainnet: true`,
    );
}

/** True when the path equals a reserved path or lies below one ("/" only reserves itself). */
export function isReservedPath(path: string): boolean {
  const normalized = path.replace(/\/+$/, "") || "/";
  return RESERVED_PATHS.some((r) =>
    r === "/" ? normalized === "/" : normalized === r || normalized.startsWith(`${r}/`),
  );
}

/** The path an offer is served at (the program always sets spec.path). */
export function offerPath(props: JsonObject): string | undefined {
  const path = at(props, "spec", "path");
  if (isUnknown(path)) return undefined;
  const explicit = asString(path);
  const name = asString(at(props, "metadata", "name"));
  const raw = explicit ?? (name ? `/services/${name}` : undefined);
  return raw === undefined ? undefined : raw.replace(/\/+$/, "") || "/";
}

export function checkReservedPath(props: JsonObject): string[] {
  const path = offerPath(props);
  if (path === undefined || !isReservedPath(path)) return [];
  return [
    `${offerLabel(props)}: spec.path "${path}" is reserved for the gateway's own pages (${RESERVED_PATHS.join(", ")}); serve the offer under /services/<name>`,
  ];
}

/** Two offers in one namespace (one gateway) must not overlap in path, nor share a hostname. */
export function checkOffersUnique(offers: readonly JsonObject[]): string[] {
  const problems: string[] = [];
  const seenPaths: { namespace: string; path: string; label: string }[] = [];
  const seenHosts = new Map<string, string>();
  for (const props of offers) {
    const label = offerLabel(props);
    const namespace = asString(at(props, "metadata", "namespace")) ?? "";
    const path = offerPath(props);
    if (path !== undefined) {
      const clash = seenPaths.find(
        (p) =>
          p.namespace === namespace &&
          (p.path === path || path.startsWith(`${p.path}/`) || p.path.startsWith(`${path}/`)),
      );
      if (clash) {
        problems.push(
          `${label}: path "${path}" overlaps "${clash.path}" of ${clash.label}; the gateway would route one offer's buyers to the other`,
        );
      }
      seenPaths.push({ namespace, path, label });
    }
    const hostname = asString(at(props, "spec", "hostname"));
    if (hostname !== undefined) {
      const key = `${namespace}/${hostname.toLowerCase()}`;
      const other = seenHosts.get(key);
      if (other) problems.push(`${label}: hostname "${hostname}" is already used by ${other}`);
      else seenHosts.set(key, label);
    }
  }
  return problems;
}
