/**
 * The gateway's route table, computed from the informer caches (never per-request API calls).
 * "Held" routes are valid, conflict-free offers (what the controller checks for
 * PaymentGateReady); "public" routes are held offers whose Ready=True for their generation.
 */
import { type OfferEnd, offerEnd } from "../../api/drain";
import type { ServiceOfferSpec } from "../../api/resources";
import type { ServiceOfferObject } from "../shared/kube";
import { isOfferReady, resolveClaims, type UpstreamOverrides, upstreamBaseUrl } from "../shared/offers";

export type RouteSpec = NonNullable<ServiceOfferSpec["routes"]>[number];

export interface HeldOffer {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly generation: number;
  readonly spec: ServiceOfferSpec;
  /** Undefined when the upstream cannot be resolved (the controller reports why). */
  readonly upstream?: URL | undefined;
  /** Ready=True for this generation: routed publicly and listed in catalogs. */
  readonly ready: boolean;
  /** When it stops taking payments and when its route goes away (api/drain.ts); {} if never. */
  readonly end: OfferEnd;
}

export function buildRouteTable(
  offers: readonly ServiceOfferObject[],
  overrides: UpstreamOverrides,
): HeldOffer[] {
  const verdicts = resolveClaims(offers);
  const held: HeldOffer[] = [];
  for (const obj of offers) {
    const verdict = verdicts.get(`${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`);
    if (!verdict?.ok) continue;
    const namespace = obj.metadata?.namespace ?? "";
    const base = upstreamBaseUrl(verdict.spec, namespace, overrides);
    held.push({
      namespace,
      name: obj.metadata?.name ?? "",
      uid: obj.metadata?.uid ?? "",
      generation: obj.metadata?.generation ?? 0,
      spec: verdict.spec,
      upstream: base.ok ? base.url : undefined,
      ready: isOfferReady(obj),
      end: offerEnd(verdict.spec, obj.metadata?.deletionTimestamp),
    });
  }
  // Listing order: weight (descending), then name.
  return held.sort(
    (a, b) => (b.spec.listing?.weight ?? 0) - (a.spec.listing?.weight ?? 0) || a.name.localeCompare(b.name),
  );
}

/** The offer serving `path`: equal to its path or below it. */
export function matchOfferByPath(
  offers: readonly HeldOffer[],
  path: string,
): { offer: HeldOffer; subPath: string } | undefined {
  let best: { offer: HeldOffer; subPath: string } | undefined;
  for (const offer of offers) {
    const prefix = offer.spec.path.replace(/\/+$/, "");
    if (path === prefix || path.startsWith(`${prefix}/`)) {
      if (!best || prefix.length > best.offer.spec.path.length) {
        best = { offer, subPath: path.slice(prefix.length) || "/" };
      }
    }
  }
  return best;
}

/** The offer that owns a dedicated hostname (Host header without port, case-insensitive). */
export function matchOfferByHost(
  offers: readonly HeldOffer[],
  host: string | undefined,
): HeldOffer | undefined {
  if (!host) return undefined;
  const name = host.replace(/:\d+$/, "").toLowerCase();
  return offers.find((o) => o.spec.hostname?.toLowerCase() === name);
}

/** Compiled route globs: a gateway holds few distinct ones, and compiling per request shows up. */
const compiledGlobs = new Map<string, RegExp>();
const MAX_COMPILED_GLOBS = 10_000;

function globToRegExp(glob: string): RegExp {
  let compiled = compiledGlobs.get(glob);
  if (!compiled) {
    if (compiledGlobs.size >= MAX_COMPILED_GLOBS) compiledGlobs.clear();
    compiled = compileGlob(glob);
    compiledGlobs.set(glob, compiled);
  }
  return compiled;
}

function compileGlob(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  // "/v1/*" also matches "/v1" itself.
  const optionalTail = escaped.endsWith("/.*") ? `${escaped.slice(0, -3)}(/.*)?` : escaped;
  return new RegExp(`^${optionalTail}$`);
}

export interface RouteDecision {
  readonly gate: "paid" | "free" | "auth";
  /** The declared route that matched, if any; without one the whole offer is paid. */
  readonly route?: RouteSpec;
}

/**
 * Decides the gate of a request's sub-path: the first declared route whose path (a glob where
 * `*` spans segments) and methods match. Anything not matched is paid: nothing is free by
 * accident.
 */
export function decideRoute(
  routes: readonly RouteSpec[] | undefined,
  subPath: string,
  method: string,
): RouteDecision {
  for (const route of routes ?? []) {
    if (route.methods && !route.methods.includes(method.toUpperCase() as (typeof route.methods)[number]))
      continue;
    if (globToRegExp(route.path).test(subPath)) return { gate: route.gate, route };
  }
  return { gate: "paid" };
}
