/**
 * ServiceOffer status: UpstreamHealthy, PaymentGateReady, Ready (= healthy ∧ gate ready ∧ no
 * conflict) and Registered (informational, never gates Ready). The status computation is pure;
 * the probes that feed it are in checks.ts.
 */
import { type Condition, OfferCondition, type ServiceOfferSpec } from "../../api/resources";
import type { AgentIdentityObject, ServiceOfferObject, ServiceOfferStatus } from "../shared/kube";
import type { ClaimVerdict } from "../shared/offers";
import type { RoutesReport } from "../shared/routesReport";
import { type ConditionInput, setConditions } from "./conditions";

export type UpstreamCheck =
  | { readonly ok: true; readonly url: string; readonly status: number }
  | {
      readonly ok: false;
      readonly reason: "Unhealthy" | "Unreachable" | "InvalidUpstream" | "InvalidSpec";
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
): ConditionInput {
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
): ConditionInput {
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
  const upstream: ConditionInput = inputs.upstream.ok
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
  let ready: ConditionInput;
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
