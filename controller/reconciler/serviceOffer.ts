/**
 * ServiceOffer status: UpstreamHealthy, PaymentGateReady, Ready (= healthy ∧ gate ready ∧ no
 * conflict) and Registered (informational, never gates Ready). The status computation is pure;
 * the probes that feed it are in checks.ts; the reconciler at the end ties them together.
 */
import {
  OfferCondition,
  type OfferReasons,
  type TypedCondition,
  type UpstreamReason,
} from "../../api/conditions";
import { AGENT_IDENTITY_NAME, PLURALS } from "../../api/contract";
import { DRAIN_FINALIZER, offerEnd } from "../../api/drain";
import type { Condition, ServiceOfferSpec } from "../../api/resources";
import type {
  AgentIdentityObject,
  ServiceOfferObject,
  ServiceOfferStatus,
  WatchedCache,
} from "../shared/kube";
import {
  type ClaimVerdict,
  findCondition,
  joinUrl,
  offerKey,
  resolveClaims,
  type UpstreamOverrides,
  upstreamBaseUrl,
} from "../shared/offers";
import type { RoutesReport } from "../shared/routesReport";
import type { GatewayRoutesClient, UpstreamProber } from "./checks";
import { setConditions } from "./conditions";
import type { ReconcileResult, Reconciler } from "./reconciler";
import type { StatusUpdater } from "./status";

type OfferConditionOf<T extends keyof OfferReasons> = Extract<TypedCondition<OfferReasons>, { type: T }>;

export type UpstreamCheck =
  | { readonly ok: true; readonly url: string; readonly status: number }
  | {
      readonly ok: false;
      readonly reason: Exclude<UpstreamReason, "Healthy">;
      readonly message: string;
    };

export type GatewayCheck =
  | { readonly ok: true; readonly report: RoutesReport }
  | { readonly ok: false; readonly message: string };

export interface OfferInputs {
  readonly verdict: ClaimVerdict;
  readonly upstream: UpstreamCheck;
  readonly gateway: GatewayCheck;
  /** The namespace's `default` AgentIdentity, if any. */
  readonly identity?: AgentIdentityObject | undefined;
  readonly publicBaseUrl?: string | undefined;
  readonly now: Date;
}

function gateCondition(
  obj: ServiceOfferObject,
  inputs: OfferInputs,
  generation: number | undefined,
): OfferConditionOf<"PaymentGateReady"> {
  const base = { type: OfferCondition.PaymentGateReady, observedGeneration: generation };
  if (!inputs.verdict.ok) {
    return {
      ...base,
      status: "False",
      reason: inputs.verdict.reason,
      message: "the gateway does not hold a route for a conflicting or invalid offer",
    };
  }
  if (!inputs.gateway.ok) {
    return { ...base, status: "False", reason: "GatewayUnreachable", message: inputs.gateway.message };
  }
  const report = inputs.gateway.report;
  if (!report.synced) {
    return {
      ...base,
      status: "False",
      reason: "GatewaySyncing",
      message: "the gateway has not finished listing offers yet",
    };
  }
  const held = report.routes.find(
    (r) =>
      r.namespace === obj.metadata?.namespace && r.name === obj.metadata?.name && r.uid === obj.metadata?.uid,
  );
  if (!held) {
    return {
      ...base,
      status: "False",
      reason: "RouteNotHeld",
      message: "the gateway does not hold this offer's route yet",
    };
  }
  if (generation !== undefined && held.generation !== generation) {
    return {
      ...base,
      status: "False",
      reason: "RouteStale",
      message: `the gateway holds generation ${held.generation}, the offer is at generation ${generation}`,
    };
  }
  if (held.facilitator && !held.facilitator.ok) {
    return { ...base, status: "False", reason: held.facilitator.reason, message: held.facilitator.message };
  }
  return {
    ...base,
    status: "True",
    reason: "RouteHeld",
    message: `the gateway holds ${held.path} behind payment gate "${held.paymentGate}"`,
  };
}

function registeredCondition(
  spec: ServiceOfferSpec | undefined,
  inputs: OfferInputs,
  generation: number | undefined,
): OfferConditionOf<"Registered"> {
  const base = { type: OfferCondition.Registered, observedGeneration: generation };
  if (!spec) return { ...base, status: "Unknown", reason: "InvalidSpec" };
  const identitySpec = inputs.identity?.spec as
    | { registrations?: { network: string; agentId: string }[] }
    | undefined;
  if (!inputs.identity) {
    return {
      ...base,
      status: "False",
      reason: "NoAgentIdentity",
      message: "no AgentIdentity named default in this namespace (informational: does not affect Ready)",
    };
  }
  const networks = [spec.payment.network, ...(spec.payments ?? []).map((p) => p.network)];
  const found = (identitySpec?.registrations ?? []).find((r) => networks.includes(r.network));
  if (!found) {
    return {
      ...base,
      status: "False",
      reason: "NotRegistered",
      message: `no ERC-8004 registration on ${spec.payment.network} (informational: does not affect Ready)`,
    };
  }
  return {
    ...base,
    status: "True",
    reason: "Registered",
    message: `agentId ${found.agentId} on ${found.network}`,
  };
}

export function computeOfferStatus(obj: ServiceOfferObject, inputs: OfferInputs): ServiceOfferStatus {
  const generation = obj.metadata?.generation;
  // A losing claim may still carry the parsed spec (for the endpoint); an invalid one has none.
  const spec = inputs.verdict.spec;
  const upstream: OfferConditionOf<"UpstreamHealthy"> = inputs.upstream.ok
    ? {
        type: OfferCondition.UpstreamHealthy,
        status: "True",
        reason: "Healthy",
        message: `GET ${inputs.upstream.url} answered ${inputs.upstream.status}`,
        observedGeneration: generation,
      }
    : {
        type: OfferCondition.UpstreamHealthy,
        status: "False",
        reason: inputs.upstream.reason,
        message: inputs.upstream.message,
        observedGeneration: generation,
      };
  const gate = gateCondition(obj, inputs, generation);
  let ready: OfferConditionOf<"Ready">;
  if (!inputs.verdict.ok) {
    ready = {
      type: OfferCondition.Ready,
      status: "False",
      reason: inputs.verdict.reason,
      message: inputs.verdict.message,
    };
  } else if (upstream.status !== "True") {
    ready = {
      type: OfferCondition.Ready,
      status: "False",
      reason: upstream.reason,
      message: upstream.message,
    };
  } else if (gate.status !== "True") {
    ready = { type: OfferCondition.Ready, status: "False", reason: gate.reason, message: gate.message };
  } else {
    ready = {
      type: OfferCondition.Ready,
      status: "True",
      reason: "Ready",
      message: "upstream healthy and the gateway holds the route",
    };
  }
  ready = { ...ready, observedGeneration: generation };
  const conditions: Condition[] = setConditions(
    obj.status?.conditions ?? [],
    [upstream, gate, ready, registeredCondition(spec, inputs, generation)],
    inputs.now,
  );
  const status: ServiceOfferStatus = { conditions, observedGeneration: generation };
  if (spec) {
    status.endpoint = inputs.publicBaseUrl
      ? `${inputs.publicBaseUrl.replace(/\/+$/, "")}${spec.path}`
      : spec.path;
  }
  return status;
}

export interface ServiceOfferReconcilerDeps {
  readonly namespace: string;
  readonly offers: WatchedCache<ServiceOfferObject>;
  readonly identities: WatchedCache<AgentIdentityObject>;
  readonly upstreamOverrides: UpstreamOverrides;
  readonly prober: UpstreamProber;
  readonly gateway: GatewayRoutesClient;
  readonly statuses: StatusUpdater;
  readonly probeIntervalMs: number;
  /** The public origin behind `status.endpoint`; it can change at run time (a quick tunnel). */
  readonly publicBaseUrl: () => string | undefined;
  /** Puts DRAIN_FINALIZER on a live offer, so that deleting it drains it. */
  readonly holdDrain: (obj: ServiceOfferObject) => Promise<void>;
  /** Removes DRAIN_FINALIZER from a deleted offer whose drain is over. */
  readonly releaseDrain: (obj: ServiceOfferObject) => Promise<void>;
  /** Milliseconds since the epoch (tests move the clock). */
  readonly now?: () => number;
}

/**
 * A deleted offer holding DRAIN_FINALIZER: released once its drain is over (the gateway has
 * dropped its route by then), else looked at again when it will be. Pure.
 */
export function drainDecision(
  obj: ServiceOfferObject,
  nowMs: number,
): { readonly release: true } | { readonly release: false; readonly afterMs: number } | undefined {
  const deleted = obj.metadata?.deletionTimestamp;
  if (!deleted || !obj.metadata?.finalizers?.includes(DRAIN_FINALIZER)) return undefined;
  const raw = obj.spec as { endsAt?: unknown; drainSeconds?: unknown } | undefined;
  // An invalid spec drains for the default: the finalizer must never be held forever.
  const spec = {
    ...(typeof raw?.endsAt === "string" ? { endsAt: raw.endsAt } : {}),
    ...(typeof raw?.drainSeconds === "number" && raw.drainSeconds >= 0
      ? { drainSeconds: Math.min(raw.drainSeconds, 86_400) }
      : {}),
  };
  const { goneAt } = offerEnd(spec, deleted);
  if (goneAt === undefined || nowMs >= goneAt) return { release: true };
  return { release: false, afterMs: goneAt - nowMs };
}

/**
 * ServiceOffer: the offer's claim on its path, its upstream's health and whether the gateway
 * holds its route, into UpstreamHealthy, PaymentGateReady, Ready and Registered.
 */
export class ServiceOfferReconciler implements Reconciler {
  /** Path and hostname claims over all offers, until an offer's claim inputs change. */
  private claims: Map<string, ClaimVerdict> | undefined;

  constructor(private readonly deps: ServiceOfferReconcilerDeps) {}

  /** An offer was added, deleted or its spec changed: claims are resolved again on next use. */
  claimsChanged(): void {
    this.claims = undefined;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const { deps } = this;
    const obj = deps.offers.get(name);
    if (!obj) return { requeue: "none" };
    if (obj.metadata?.deletionTimestamp) {
      const drain = drainDecision(obj, deps.now?.() ?? Date.now());
      if (!drain) return { requeue: "none" };
      if (!drain.release) return { requeue: "after", ms: drain.afterMs + 100 };
      await deps.releaseDrain(obj);
      return { requeue: "none" };
    }
    // The controller puts the finalizer on, not the program: an offer is held only while a
    // controller is there to release it (a stack without one deletes offers at once).
    if (!obj.metadata?.finalizers?.includes(DRAIN_FINALIZER)) await deps.holdDrain(obj);
    this.claims ??= resolveClaims(deps.offers.list());
    const verdict = this.claims.get(offerKey(obj));
    if (!verdict) return { requeue: "none" };
    let upstream: UpstreamCheck;
    if (verdict.spec) {
      const base = upstreamBaseUrl(verdict.spec, deps.namespace, deps.upstreamOverrides);
      upstream = base.ok
        ? await deps.prober.probe(joinUrl(base.url, verdict.spec.upstream.healthPath))
        : { ok: false, reason: "InvalidUpstream", message: base.message };
    } else {
      upstream = { ok: false, reason: "InvalidSpec", message: verdict.ok ? "" : verdict.message };
    }
    const gateway = await deps.gateway.get();
    // The cache may have moved on while we probed: compute against the newest object.
    const current = deps.offers.get(name) ?? obj;
    const status = computeOfferStatus(current, {
      verdict,
      upstream,
      gateway,
      identity: deps.identities.get(AGENT_IDENTITY_NAME),
      publicBaseUrl: deps.publicBaseUrl(),
      now: new Date(),
    });
    await deps.statuses.write(PLURALS.serviceOffer, current, status);
    const ready = findCondition(status.conditions, OfferCondition.Ready)?.status === "True";
    return ready
      ? { requeue: "after", ms: jitter(deps.probeIntervalMs) }
      : { requeue: "backoff", capMs: deps.probeIntervalMs };
  }
}

/** `ms` ± 10%, so offers created together do not all re-check in the same instant. */
function jitter(ms: number): number {
  return Math.round(ms * (0.9 + Math.random() * 0.2));
}
