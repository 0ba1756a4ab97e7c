/**
 * What a signed payment lets a seller do, and whether the chain says it was done.
 *
 * Once the buyer has handed a signed authorization to a seller, only the chain can say whether
 * it was used: a seller may settle and still omit (or lie in) its receipt header. The buyer
 * therefore counts such a payment as spent until the chain proves it can never be settled: the
 * authorization is unused at a block whose timestamp is past its validity.
 */
import { PERMIT2_ADDRESS } from "@x402/evm";
import { type Address, getAddress, type Hex, type PublicClient, parseAbi } from "viem";

/** A signed authorization, by the on-chain state that records its use. Strings: it goes to the ledger. */
export type PaymentAuthorization =
  | {
      kind: "eip3009";
      network: string;
      token: Address;
      from: Address;
      nonce: Hex;
      /** Usable while block.timestamp < validBefore. */
      validBefore: string;
    }
  | {
      kind: "permit2";
      network: string;
      owner: Address;
      nonce: string;
      /** Usable while block.timestamp <= deadline. */
      deadline: string;
    };

export type AuthorizationState = "used" | "expired_unused" | "open";

/** The authorization inside an x402 `exact` EVM payment payload (v1 or v2); undefined if unknown. */
export function authorizationOf(
  payload: unknown,
  requirements: { network: string; asset: string },
): PaymentAuthorization | undefined {
  const p = (payload as { payload?: Record<string, unknown> } | undefined)?.payload;
  if (!p) return undefined;
  const eip3009 = p.authorization as
    | { from?: string; nonce?: string; validBefore?: string | number }
    | undefined;
  if (eip3009?.from && eip3009.nonce && eip3009.validBefore !== undefined) {
    return {
      kind: "eip3009",
      network: requirements.network,
      token: getAddress(requirements.asset),
      from: getAddress(eip3009.from),
      nonce: eip3009.nonce as Hex,
      validBefore: String(eip3009.validBefore),
    };
  }
  const permit2 = p.permit2Authorization as
    | { from?: string; nonce?: string | number; deadline?: string | number }
    | undefined;
  if (permit2?.from && permit2.nonce !== undefined && permit2.deadline !== undefined) {
    return {
      kind: "permit2",
      network: requirements.network,
      owner: getAddress(permit2.from),
      nonce: String(permit2.nonce),
      deadline: String(permit2.deadline),
    };
  }
  return undefined;
}

/** The first block timestamp at which the authorization can no longer be used. */
export function unusableFrom(auth: PaymentAuthorization): bigint {
  return auth.kind === "eip3009" ? BigInt(auth.validBefore) : BigInt(auth.deadline) + 1n;
}

const EIP3009_ABI = parseAbi([
  "function authorizationState(address authorizer, bytes32 nonce) view returns (bool)",
]);
const PERMIT2_ABI = parseAbi(["function nonceBitmap(address owner, uint256 word) view returns (uint256)"]);

/**
 * Reads the authorization's state at the latest block. "expired_unused" is final: the state is
 * read at that very block, and every later block has a timestamp at least as large.
 */
export async function authorizationState(
  client: PublicClient,
  auth: PaymentAuthorization,
): Promise<AuthorizationState> {
  const block = await client.getBlock({ blockTag: "latest" });
  let used: boolean;
  if (auth.kind === "eip3009") {
    used = await client.readContract({
      address: auth.token,
      abi: EIP3009_ABI,
      functionName: "authorizationState",
      args: [auth.from, auth.nonce],
      blockNumber: block.number,
    });
  } else {
    // Permit2's unordered nonces: word nonce >> 8, bit nonce & 0xff.
    const nonce = BigInt(auth.nonce);
    const bitmap = await client.readContract({
      address: PERMIT2_ADDRESS,
      abi: PERMIT2_ABI,
      functionName: "nonceBitmap",
      args: [auth.owner, nonce >> 8n],
      blockNumber: block.number,
    });
    used = ((bitmap >> (nonce & 0xffn)) & 1n) === 1n;
  }
  if (used) return "used";
  return block.timestamp >= unusableFrom(auth) ? "expired_unused" : "open";
}
