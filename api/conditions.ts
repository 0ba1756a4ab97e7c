/**
 * The status conditions of the obol.org kinds: their types and the reasons each may carry. The
 * controller writes them, the gateway reads Ready, the CRDs' printer columns show them, and
 * users (and tests) wait on them; all of them spell them from here.
 */

/**
 * ServiceOffer: Ready is operational only (upstream healthy ∧ gate ready ∧ no conflict);
 * Registered never gates it. The gate is ready when the gateway holds the route and its
 * facilitator supports every payment of the offer.
 */
export const OfferCondition = {
  UpstreamHealthy: "UpstreamHealthy",
  PaymentGateReady: "PaymentGateReady",
  Ready: "Ready",
  Registered: "Registered",
} as const;
export type OfferConditionType = (typeof OfferCondition)[keyof typeof OfferCondition];

/** Why an offer cannot hold its path (first claimant wins) or has no usable spec. */
export type ClaimReason = "InvalidSpec" | "ReservedPath" | "PathConflict" | "HostnameConflict";
export type UpstreamReason = "Healthy" | "Unhealthy" | "Unreachable" | "InvalidUpstream" | "InvalidSpec";
/**
 * Why the gateway cannot take payments for an offer although it holds the route: its facilitator's
 * GET /supported does not list the offer's scheme on its network, or the gateway has not been
 * able to read /supported (for longer than it keeps the last answer).
 */
export type FacilitatorReason = "FacilitatorUnsupported" | "FacilitatorUnreachable";
export type GateReason =
  | ClaimReason
  | FacilitatorReason
  | "GatewayUnreachable"
  | "GatewaySyncing"
  | "RouteNotHeld"
  | "RouteStale"
  | "RouteHeld";
export type RegisteredReason = "InvalidSpec" | "NoAgentIdentity" | "NotRegistered" | "Registered";
/** Ready carries its own "Ready", or the first failing reason of a condition it depends on. */
export type OfferReadyReason = "Ready" | ClaimReason | UpstreamReason | GateReason;

export interface OfferReasons {
  readonly UpstreamHealthy: UpstreamReason;
  readonly PaymentGateReady: GateReason;
  readonly Ready: OfferReadyReason;
  readonly Registered: RegisteredReason;
}

/** AgentIdentity: Active while at least one offer is Ready (else the registration is a tombstone). */
export const IdentityCondition = { Active: "Active" } as const;
export interface IdentityReasons {
  readonly Active: "OffersReady" | "NoReadyOffers";
}

/** PurchaseRequest: Probed (the seller's 402 matches the agreed terms) and Ready. */
export const PurchaseCondition = { Probed: "Probed", Ready: "Ready" } as const;
/** Why a seller named by its ERC-8004 agent id (spec.agent) cannot be paid. */
export type AgentReason = "AgentUnresolved" | "AgentMismatch" | "AgentInactive" | "ServiceNotFound";
export type ProbeReason =
  | "Validated"
  | "ProbeError"
  | "NotPaymentGated"
  | "NetworkMismatch"
  | "AssetMismatch"
  | "PricingMismatch"
  | "InvalidSpec"
  | AgentReason;
export interface PurchaseReasons {
  readonly Probed: ProbeReason;
  readonly Ready: "Ready" | Exclude<ProbeReason, "Validated">;
}

/** A condition of one kind, typed by its type: `TypedCondition<OfferReasons>` has only offer reasons. */
export type TypedCondition<R> = {
  [T in keyof R & string]: {
    readonly type: T;
    readonly status: "True" | "False" | "Unknown";
    readonly reason: R[T];
    readonly message?: string | undefined;
    readonly observedGeneration?: number | undefined;
  };
}[keyof R & string];
