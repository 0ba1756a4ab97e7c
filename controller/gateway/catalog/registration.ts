/**
 * `/.well-known/agent-registration.json`: the ERC-8004 registration-v1 document, from the
 * namespace's `default` AgentIdentity plus the ready offers. No ready offer → a tombstone
 * (active: false, x402Support: false, no services).
 *
 * Besides the storefront ("web"), each ready offer is one service named after the offer, with
 * its endpoint and (extra keys the spec allows) its type and model: a buyer that knows only the
 * agent id finds the offer it purchases here.
 */
import { DEFAULT_AGENT_IMAGE } from "../../../api/agentImage";
import { agentRegistryId, type Caip2 } from "../../../api/chains";
import { REGISTRATION_TYPE, type RegistrationDocument } from "../../../api/registration";
import type { Catalog } from "./model";

export { REGISTRATION_TYPE, type RegistrationDocument };

export function renderRegistration(catalog: Catalog): RegistrationDocument {
  const active = catalog.offers.length > 0;
  const identity = catalog.identity;
  const registrations = [...(identity?.registrations ?? [])]
    .sort((a, b) => a.network.localeCompare(b.network))
    .map((r) => ({
      agentId: BigInt(r.agentId),
      agentRegistry: agentRegistryId(r.network as Caip2, r.registry),
    }));
  const doc: RegistrationDocument = {
    type: REGISTRATION_TYPE,
    name: catalog.displayName,
    description: active
      ? catalog.description
      : `${catalog.displayName} (deactivated: no service is currently offered)`,
    image: identity?.image || DEFAULT_AGENT_IMAGE,
    services: active
      ? [
          { name: "web", endpoint: `${catalog.baseUrl}/` },
          ...catalog.offers.map((o) => ({
            name: o.name,
            endpoint: o.endpoint,
            type: o.type,
            ...(o.model ? { model: o.model } : {}),
          })),
        ]
      : [],
    x402Support: active,
    active,
    registrations,
    supportedTrust: [],
  };
  return doc;
}
