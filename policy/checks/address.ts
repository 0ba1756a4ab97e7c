/** EIP-55 checksummed Ethereum addresses. */
import { keccak256Hex } from "./keccak";

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";

/** The EIP-55 form of a 20-byte hex address (any case); undefined if it is not an address. */
export function toChecksumAddress(address: string): string | undefined {
  if (!ADDRESS.test(address)) return undefined;
  const lower = address.slice(2).toLowerCase();
  const hash = keccak256Hex(new TextEncoder().encode(lower));
  let out = "0x";
  for (const [i, ch] of [...lower].entries()) {
    out += Number.parseInt(hash.charAt(i), 16) >= 8 ? ch.toUpperCase() : ch;
  }
  return out;
}

/** Why `address` is not an acceptable payee, or undefined when it is. */
export function payeeProblem(address: string): string | undefined {
  const checksummed = toChecksumAddress(address);
  if (!checksummed) return `"${address}" is not an address (0x followed by 40 hex digits)`;
  if (checksummed === ZERO_ADDRESS) return "is the zero address; payments sent there are burned";
  if (checksummed !== address) {
    return `"${address}" is not EIP-55 checksummed (a typo, or an unverified copy); the checksummed form is ${checksummed}`;
  }
  return undefined;
}
