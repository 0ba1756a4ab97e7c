/** AgentIdentity status: which offers are published (Ready) and whether the agent is active. */
import type { AgentIdentityObject, AgentIdentityStatus, ServiceOfferObject } from "../shared/kube";
import { isOfferReady } from "../shared/offers";
import { setConditions } from "./conditions";

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
  return {
    publishedOffers: published,
    active,
    observedGeneration: generation,
    conditions: setConditions(
      identity.status?.conditions ?? [],
      [
        active
          ? {
              type: "Active",
              status: "True",
              reason: "OffersReady",
              message: `${published.length} ready offer(s) published in agent-registration.json`,
              observedGeneration: generation,
            }
          : {
              type: "Active",
              status: "False",
              reason: "NoReadyOffers",
              message: "no offer is Ready: agent-registration.json is a tombstone (active: false)",
              observedGeneration: generation,
            },
      ],
      now,
    ),
  };
}
