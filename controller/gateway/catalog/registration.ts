/**
 * `/.well-known/agent-registration.json`: the ERC-8004 registration-v1 document, from the
 * namespace's `default` AgentIdentity plus the ready offers. No ready offer → a tombstone
 * (active: false, x402Support: false, no services).
 */
import { DEFAULT_AGENT_IMAGE } from "../../../api/agentImage";
import { agentRegistryId, type Caip2 } from "../../../api/chains";
import type { Catalog } from "./model";

export const REGISTRATION_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";

export interface RegistrationDocument {
  type: typeof REGISTRATION_TYPE;
  name: string;
  description: string;
  /** ERC-8004: SHOULD be present (ERC-721 apps show it); a default when the operator sets none. */
  image: string;
  services: { name: string; endpoint: string; version?: string }[];
  x402Support: boolean;
  active: boolean;
  /** agentId is a uint256: a bigint, serialized exactly with exactJson (never a lossy Number). */
  registrations: { agentId: bigint; agentRegistry: string }[];
  supportedTrust: string[];
}

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
    services: active ? [{ name: "web", endpoint: `${catalog.baseUrl}/` }] : [],
    x402Support: active,
    active,
    registrations,
    supportedTrust: [],
  };
  return doc;
}
