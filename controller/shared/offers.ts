/**
 * Pure rules about ServiceOffers shared by the controller and the gateway, so both always agree
 * on which offer owns a path: spec validation, reserved paths, first-claimant-wins conflicts,
 * upstream URL resolution and public readiness.
 */
import { type ClaimReason, OfferCondition } from "../../api/conditions";
import { isReservedPath } from "../../api/contract";
import { DRAIN_FINALIZER } from "../../api/drain";
import { type Condition, type ServiceOfferSpec, serviceOfferSpecSchema } from "../../api/resources";
import type { ServiceOfferObject } from "./kube";

export type ClaimVerdict =
  | { readonly ok: true; readonly spec: ServiceOfferSpec }
  | {
      readonly ok: false;
      readonly reason: ClaimReason;
      readonly message: string;
      readonly spec?: ServiceOfferSpec;
    };

export function offerKey(obj: ServiceOfferObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

/**
 * Specs parsed so far, per spec object: informer caches hand out the same object until it
 * changes, so a claim resolution over N offers parses only the offers that changed.
 */
const parsedSpecs = new WeakMap<object, ReturnType<typeof parseSpec>>();

export function parseOfferSpec(
  obj: ServiceOfferObject,
): { ok: true; spec: ServiceOfferSpec } | { ok: false; message: string } {
  const raw = obj.spec;
  if (typeof raw !== "object" || raw === null) return parseSpec(raw);
  let parsed = parsedSpecs.get(raw);
  if (!parsed) {
    parsed = parseSpec(raw);
    parsedSpecs.set(raw, parsed);
  }
  return parsed;
}

function parseSpec(raw: unknown): { ok: true; spec: ServiceOfferSpec } | { ok: false; message: string } {
  const parsed = serviceOfferSpecSchema.safeParse(raw);
  if (parsed.success) return { ok: true, spec: parsed.data };
  const message = parsed.error.issues
    .map((i) => `spec.${i.path.map(String).join(".")}: ${i.message}`)
    .join("; ");
  return {
    ok: false,
    message: `the spec does not match the ServiceOffer schema (${message}); fix the offer in stack config`,
  };
}

function normalizePath(p: string): string {
  return p.replace(/\/+$/, "") || "/";
}

/** True when one path equals the other or lies below it. */
export function pathsOverlap(a: string, b: string): boolean {
  const x = normalizePath(a);
  const y = normalizePath(b);
  return x === y || x.startsWith(`${y}/`) || y.startsWith(`${x}/`) || x === "/" || y === "/";
}

/** The proper ancestors of a normalized path, as pathsOverlap sees them: "/a/b" → ["/a"]. */
function ancestors(p: string): string[] {
  const out: string[] = [];
  for (let i = p.indexOf("/", 1); i > 0; i = p.indexOf("/", i + 1)) out.push(p.slice(0, i));
  return out;
}

interface Winner {
  readonly key: string;
  readonly path: string;
}

/**
 * The paths already claimed, indexed so that finding the oldest claim overlapping a new path
 * costs O(depth of the path) instead of a scan of every claim. Answers exactly what
 * `winners.find((w) => pathsOverlap(w.path, path))` would, given that claims never overlap
 * each other.
 */
class PathClaims {
  private first?: Winner;
  private root?: Winner;
  /** Claimed path → its claim. */
  private readonly exact = new Map<string, Winner>();
  /** Claimed path or any ancestor of one → the oldest claim at or below it. */
  private readonly below = new Map<string, Winner>();

  overlapping(path: string): Winner | undefined {
    const p = normalizePath(path);
    if (this.root) return this.root;
    if (p === "/") return this.first;
    // At most one claim can be an ancestor of p (two would overlap each other) ...
    for (const a of ancestors(p)) {
      const w = this.exact.get(a);
      if (w) return w;
    }
    // ... and if none is, the oldest claim at or below p is the first one to overlap.
    return this.below.get(p);
  }

  add(winner: Winner): void {
    const p = normalizePath(winner.path);
    this.first ??= winner;
    if (p === "/") this.root ??= winner;
    this.exact.set(p, winner);
    for (const key of [p, ...ancestors(p)]) if (!this.below.has(key)) this.below.set(key, winner);
  }
}

/**
 * Decides which offers may hold their path and hostname. The first claimant (oldest
 * creationTimestamp, then namespace/name) wins; later offers on an overlapping path or the same
 * hostname lose with PathConflict / HostnameConflict. Offers being deleted claim nothing, except
 * while they drain (they hold DRAIN_FINALIZER): then they keep what no live offer claims, so a
 * replacement on the same path takes over at once. O(N log N) in the number of offers: the
 * controller and the gateway resolve claims over every offer whenever one changes.
 */
export function resolveClaims(offers: readonly ServiceOfferObject[]): Map<string, ClaimVerdict> {
  const verdicts = new Map<string, ClaimVerdict>();
  const paths = new PathClaims();
  const hostnames = new Map<string, Winner>();
  const byAge = (a: { created: number; key: string }, b: { created: number; key: string }) =>
    a.created - b.created || a.key.localeCompare(b.key);
  const entry = (obj: ServiceOfferObject) => ({ obj, key: offerKey(obj), created: createdAt(obj) });
  const live = [
    ...offers
      .filter((o) => !o.metadata?.deletionTimestamp)
      .map(entry)
      .sort(byAge),
    ...offers
      .filter((o) => o.metadata?.deletionTimestamp && o.metadata.finalizers?.includes(DRAIN_FINALIZER))
      .map(entry)
      .sort(byAge),
  ];
  for (const { obj, key } of live) {
    const parsed = parseOfferSpec(obj);
    if (!parsed.ok) {
      verdicts.set(key, { ok: false, reason: "InvalidSpec", message: parsed.message });
      continue;
    }
    const spec = parsed.spec;
    if (isReservedPath(spec.path)) {
      verdicts.set(key, {
        ok: false,
        reason: "ReservedPath",
        spec,
        message: `path ${spec.path} is reserved for the gateway's own pages; use a path such as /services/${obj.metadata?.name}`,
      });
      continue;
    }
    const host = spec.hostname?.toLowerCase();
    const hostClash = host ? hostnames.get(host) : undefined;
    if (hostClash) {
      verdicts.set(key, {
        ok: false,
        reason: "HostnameConflict",
        spec,
        message: `hostname ${spec.hostname} is already claimed by the older offer ${hostClash.key}; choose another hostname or remove that offer`,
      });
      continue;
    }
    const pathClash = paths.overlapping(spec.path);
    if (pathClash) {
      verdicts.set(key, {
        ok: false,
        reason: "PathConflict",
        spec,
        message: `path ${spec.path} overlaps ${pathClash.path}, already claimed by the older offer ${pathClash.key}; choose another path`,
      });
      continue;
    }
    const winner = { key, path: spec.path };
    paths.add(winner);
    if (host && !hostnames.has(host)) hostnames.set(host, winner);
    verdicts.set(key, { ok: true, spec });
  }
  return verdicts;
}

function createdAt(obj: ServiceOfferObject): number {
  const t = obj.metadata?.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
}

/** Maps `<service>.<namespace>` to a base URL, so tests on loopback can stand in for Services. */
export type UpstreamOverrides = Readonly<Record<string, string>>;

export function parseUpstreamOverrides(raw: string | undefined): UpstreamOverrides {
  if (!raw) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new Error(
      `upstream overrides must be a JSON object such as {"svc.ns": "http://127.0.0.1:1234"}, got ${raw}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`upstream overrides must be a JSON object such as {"svc.ns": "http://127.0.0.1:1234"}`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new Error(`upstream override for ${k} must be a URL string`);
    out[k] = v;
  }
  return out;
}

/**
 * The upstream base URL: spec.upstream.url if set, else the Service
 * `http://<service>.<namespace>.svc:<port>` (namespace defaults to the offer's), unless an
 * override maps `<service>.<namespace>` elsewhere.
 */
export function upstreamBaseUrl(
  spec: ServiceOfferSpec,
  offerNamespace: string,
  overrides: UpstreamOverrides,
): { ok: true; url: URL } | { ok: false; message: string } {
  const u = spec.upstream;
  let raw: string;
  if (u.url) {
    raw = u.url;
  } else if (u.service && u.port) {
    const ns = u.namespace || offerNamespace;
    raw = overrides[`${u.service}.${ns}`] ?? `http://${u.service}.${ns}.svc:${u.port}`;
  } else {
    return { ok: false, message: "spec.upstream needs either url, or service and port" };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, message: `upstream URL "${raw}" is not a valid URL` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { ok: false, message: `upstream URL "${raw}" must use http or https` };
  }
  return { ok: true, url };
}

/** Joins a base URL (which may carry a path prefix) with a sub-path and query. */
export function joinUrl(base: URL, subPath: string, search = ""): URL {
  const url = new URL(base.toString());
  const prefix = url.pathname.replace(/\/+$/, "");
  const rest = subPath.startsWith("/") ? subPath : `/${subPath}`;
  url.pathname = `${prefix}${rest}` || "/";
  url.search = search;
  return url;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * Ready=True for the offer's current generation: the gateway routes and lists only these. A
 * deleted offer keeps the readiness it had: the deletion bumps its generation, its spec can no
 * longer change, and the controller writes no status while it drains.
 */
export function isOfferReady(obj: ServiceOfferObject): boolean {
  const ready = findCondition(obj.status?.conditions, OfferCondition.Ready);
  if (ready?.status !== "True") return false;
  const generation = obj.metadata?.generation;
  return (
    generation === undefined ||
    obj.metadata?.deletionTimestamp !== undefined ||
    ready.observedGeneration === undefined ||
    ready.observedGeneration === generation
  );
}
