/**
 * ERC-8004 agent references: `eip155:<chainId>:<registry>#<agentId>`, the agent's registry
 * identifier (`agentRegistry` in a registration document) plus its token id. Agent ids are
 * uint256: they stay decimal strings (or bigints) end to end, never a JavaScript number.
 */
import { getAddress, isAddress } from "viem";
import type { Caip2 } from "./chains";

export const UINT256_MAX = (1n << 256n) - 1n;

export interface AgentRef {
  readonly network: Caip2;
  /** Checksummed IdentityRegistry address. */
  readonly registry: `0x${string}`;
  /** Canonical decimal string of the uint256 token id (no leading zeros). */
  readonly agentId: string;
}

export class AgentRefError extends Error {
  override name = "AgentRefError";
}

const REF = /^eip155:([1-9][0-9]*):(0x[0-9a-fA-F]{40})#([0-9]+)$/;

/** Canonical decimal form of a uint256 given as text; throws when it is not one. */
export function canonicalAgentId(text: string): string {
  if (!/^[0-9]+$/.test(text)) throw new AgentRefError(`agent id "${text}" must be a decimal integer`);
  const value = BigInt(text);
  if (value > UINT256_MAX) throw new AgentRefError(`agent id ${text} does not fit in a uint256`);
  return value.toString();
}

/** Parses `eip155:<chainId>:<registry>#<agentId>`; the message says what is wrong and the form. */
export function parseAgentRef(text: string): AgentRef {
  const m = REF.exec(text.trim());
  const [, chainId, address, agentId] = m ?? [];
  if (!chainId || !address || !agentId) {
    throw new AgentRefError(
      `"${text}" is not an ERC-8004 agent reference: write eip155:<chainId>:<IdentityRegistry address>#<agentId>, e.g. eip155:84532:0x8004A818BFB912233c491871b3d84c89A494BD9e#42`,
    );
  }
  if (!isAddress(address, { strict: false }))
    throw new AgentRefError(`"${address}" in "${text}" is not an address`);
  if (address !== address.toLowerCase() && address !== getAddress(address)) {
    throw new AgentRefError(
      `registry "${address}" has a bad EIP-55 checksum (a typo?); the checksummed form is ${getAddress(address)}`,
    );
  }
  if (!Number.isSafeInteger(Number(chainId)))
    throw new AgentRefError(`chain id ${chainId} in "${text}" is too large`);
  return {
    network: `eip155:${chainId}` as Caip2,
    registry: getAddress(address),
    agentId: canonicalAgentId(agentId),
  };
}

export function formatAgentRef(ref: AgentRef): string {
  return `${ref.network}:${ref.registry}#${ref.agentId}`;
}
