/** AgentIdentity status: which offers are published (Ready) and whether the agent is active. */
import { IdentityCondition, type IdentityReasons, type TypedCondition } from "../../api/conditions";
import { PLURALS } from "../../api/contract";
import type {
  AgentIdentityObject,
  AgentIdentityStatus,
  ServiceOfferObject,
  WatchedCache,
} from "../shared/kube";
import { isOfferReady } from "../shared/offers";
import { setConditions } from "./conditions";
import type { ReconcileResult, Reconciler } from "./reconciler";
import type { StatusUpdater } from "./status";

export function computeIdentityStatus(
  identity: AgentIdentityObject,
  offers: readonly ServiceOfferObject[],
  now: Date,
): AgentIdentityStatus {
  const published = offers
    .filter((o) => !o.metadata?.deletionTimestamp && isOfferReady(o))
    .map((o) => o.metadata?.name ?? "")
    .sort();
  const generation = identity.metadata?.generation;
  const active = published.length > 0;
  const condition: TypedCondition<IdentityReasons> = active
    ? {
        type: IdentityCondition.Active,
        status: "True",
        reason: "OffersReady",
        message: `${published.length} ready offer(s) published in agent-registration.json`,
        observedGeneration: generation,
      }
    : {
        type: IdentityCondition.Active,
        status: "False",
        reason: "NoReadyOffers",
        message: "no offer is Ready: agent-registration.json is a tombstone (active: false)",
        observedGeneration: generation,
      };
  return {
    publishedOffers: published,
    active,
    observedGeneration: generation,
    conditions: setConditions(identity.status?.conditions ?? [], [condition], now),
  };
}

/** AgentIdentity: which offers are Ready, into publishedOffers, active and the Active condition. */
export class AgentIdentityReconciler implements Reconciler {
  constructor(
    private readonly deps: {
      readonly identities: WatchedCache<AgentIdentityObject>;
      readonly offers: WatchedCache<ServiceOfferObject>;
      readonly statuses: StatusUpdater;
    },
  ) {}

  async reconcile(name: string): Promise<ReconcileResult> {
    const obj = this.deps.identities.get(name);
    if (!obj || obj.metadata?.deletionTimestamp) return { requeue: "none" };
    const status = computeIdentityStatus(obj, this.deps.offers.list(), new Date());
    await this.deps.statuses.write(PLURALS.agentIdentity, obj, status);
    return { requeue: "none" };
  }
}
