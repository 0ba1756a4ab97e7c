/**
 * Chains, in one canonical form: CAIP-2 (`eip155:<chainId>`). Legacy names such as
 * `base-sepolia` are accepted only at the edges (stack config, x402 v1 headers) and converted
 * here, once. Everything stored in a CRD or compared at run time is CAIP-2.
 */

export type Caip2 = `eip155:${number}`;

export interface TokenInfo {
  readonly address: `0x${string}`;
  readonly symbol: string;
  readonly decimals: number;
  /** How buyers authorize a transfer of this token. */
  readonly transferMethod: "eip3009" | "permit2";
  /** EIP-712 domain of the token (EIP-3009 signatures are bound to it). */
  readonly eip712Name: string;
  readonly eip712Version: string;
}

export interface ChainInfo {
  readonly caip2: Caip2;
  readonly chainId: number;
  /** The x402 v1 network name, when the chain has one. */
  readonly legacyName?: string;
  readonly displayName: string;
  readonly mainnet: boolean;
  /** A chain that runs on the operator's machine (its name says so; it is not a public testnet). */
  readonly local?: boolean;
  /** Default payment token; absent for local chains, where offers must name their asset. */
  readonly usdc?: TokenInfo;
  /** ERC-8004 IdentityRegistry (the same vanity address on every mainnet / every testnet). */
  readonly identityRegistry?: `0x${string}`;
}

const MAINNET_IDENTITY_REGISTRY = "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432";
const TESTNET_IDENTITY_REGISTRY = "0x8004A818BFB912233c491871b3d84c89A494BD9e";

export const CHAINS: readonly ChainInfo[] = [
  {
    caip2: "eip155:8453",
    chainId: 8453,
    legacyName: "base",
    displayName: "Base",
    mainnet: true,
    usdc: {
      address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
      symbol: "USDC",
      decimals: 6,
      transferMethod: "eip3009",
      eip712Name: "USD Coin",
      eip712Version: "2",
    },
    identityRegistry: MAINNET_IDENTITY_REGISTRY,
  },
  {
    caip2: "eip155:84532",
    chainId: 84532,
    legacyName: "base-sepolia",
    displayName: "Base Sepolia",
    mainnet: false,
    usdc: {
      address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      symbol: "USDC",
      // Base Sepolia's USDC signs with the domain name "USDC", not "USD Coin".
      decimals: 6,
      transferMethod: "eip3009",
      eip712Name: "USDC",
      eip712Version: "2",
    },
    identityRegistry: TESTNET_IDENTITY_REGISTRY,
  },
  {
    caip2: "eip155:1",
    chainId: 1,
    legacyName: "ethereum",
    displayName: "Ethereum",
    mainnet: true,
    usdc: {
      address: "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
      symbol: "USDC",
      decimals: 6,
      transferMethod: "eip3009",
      eip712Name: "USD Coin",
      eip712Version: "2",
    },
    identityRegistry: MAINNET_IDENTITY_REGISTRY,
  },
  {
    caip2: "eip155:11155111",
    chainId: 11155111,
    legacyName: "sepolia",
    displayName: "Ethereum Sepolia",
    mainnet: false,
    identityRegistry: TESTNET_IDENTITY_REGISTRY,
  },
  {
    caip2: "eip155:31337",
    chainId: 31337,
    legacyName: "anvil",
    displayName: "Local (anvil)",
    mainnet: false,
    local: true,
  },
];

const byCaip2 = new Map(CHAINS.map((c) => [c.caip2, c]));
const byLegacy = new Map(CHAINS.filter((c) => c.legacyName).map((c) => [c.legacyName!, c]));

export class UnknownChainError extends Error {
  constructor(readonly input: string) {
    super(
      `unknown network "${input}": use a CAIP-2 id such as eip155:84532 (Base Sepolia) or one of: ${CHAINS.map(
        (c) => `${c.caip2}${c.legacyName ? ` (${c.legacyName})` : ""}`,
      ).join(", ")}`,
    );
  }
}

/**
 * Parses a network given as CAIP-2 or a legacy name. Any `eip155:<id>` is accepted (operators
 * may run chains we have no defaults for); names must be known.
 */
export function toCaip2(input: string): Caip2 {
  const value = input.trim();
  const match = /^eip155:([1-9][0-9]{0,18})$/.exec(value);
  // The digits as written (the pattern already forbids leading zeros): a chain id is a 64-bit
  // value, and Number() would round one above 2^53 to a different chain.
  if (match) return `eip155:${match[1]}` as Caip2;
  const known = byLegacy.get(value.toLowerCase());
  if (known) return known.caip2;
  throw new UnknownChainError(input);
}

export function chainInfo(caip2: Caip2): ChainInfo | undefined {
  return byCaip2.get(caip2);
}

/**
 * The network as a person reads it: "Base", "Base Sepolia (testnet)", "Local (anvil)"; the CAIP-2
 * id for a chain this table does not know. Every page and message a person reads uses this, so a
 * testnet is never mistaken for money.
 */
export function networkLabel(network: string): string {
  const chain = byCaip2.get(network as Caip2);
  if (!chain) return network;
  return chain.mainnet || chain.local ? chain.displayName : `${chain.displayName} (testnet)`;
}

/** True for a public testnet (test tokens with no value); false for mainnets, local and unknown chains. */
export function isTestnet(network: string): boolean {
  const chain = byCaip2.get(network as Caip2);
  return chain !== undefined && !chain.mainnet && !chain.local;
}

/** The chain id, exactly (64-bit chain ids exceed 2^53). */
export function chainIdOf(caip2: Caip2): bigint {
  return BigInt(caip2.slice("eip155:".length));
}

/** The x402 v1 name for a chain (v1 buyers expect names); falls back to CAIP-2. */
export function legacyNetworkName(caip2: Caip2): string {
  return byCaip2.get(caip2)?.legacyName ?? caip2;
}

/** ERC-8004 `agentRegistry` identifier: `eip155:<chainId>:<registry>`. */
export function agentRegistryId(caip2: Caip2, registry: string): string {
  return `${caip2}:${registry}`;
}
