/**
 * Pure helpers of the ERC-8004 AgentRegistration provider: input checks, the diff, the
 * tombstone document, Registered-event selection and metadata read-before-write. No I/O here.
 *
 * This module is serialized by value into the provider's closure (`__provider`), so it must
 * only hold plain data and functions: no top-level imports of packages (type imports are
 * erased), no clients, no schemas.
 */
import type { Hex } from "viem";
import { DEFAULT_AGENT_IMAGE } from "../api/agentImage";
import { exactJson } from "../api/exactJson";

/** What the engine sends for a value not known yet (preview), whatever the field's type. */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** The registration-v1 document type (ERC-8004 §"Agent registration file"). */
export const REGISTRATION_V1 = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";

/** The metadata key the registry reserves for setAgentWallet. */
export const RESERVED_METADATA_KEY = "agentWallet";

/** The subset of the IdentityRegistry ABI the provider uses (human-readable, for viem's parseAbi). */
export const IDENTITY_REGISTRY_ABI = [
  "function register(string agentURI) returns (uint256 agentId)",
  "function setAgentURI(uint256 agentId, string newURI)",
  "function tokenURI(uint256 agentId) view returns (string)",
  "function ownerOf(uint256 agentId) view returns (address)",
  "function balanceOf(address owner) view returns (uint256)",
  "function getMetadata(uint256 agentId, string metadataKey) view returns (bytes)",
  "function setMetadata(uint256 agentId, string metadataKey, bytes metadataValue)",
  "function getAgentWallet(uint256 agentId) view returns (address)",
  "function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes signature)",
  "event Registered(uint256 indexed agentId, string agentURI, address indexed owner)",
  "event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy)",
  "error ERC721NonexistentToken(uint256 tokenId)",
] as const;

/** EIP-712 domain name, version and type of the registry's setAgentWallet consent. */
export const AGENT_WALLET_DOMAIN = { name: "ERC8004IdentityRegistry", version: "1" } as const;
export const AGENT_WALLET_TYPES = {
  AgentWalletSet: [
    { name: "agentId", type: "uint256" },
    { name: "newWallet", type: "address" },
    { name: "owner", type: "address" },
    { name: "deadline", type: "uint256" },
  ],
} as const;
/** The registry accepts deadlines up to now + 5 minutes; stay well inside that. */
export const AGENT_WALLET_DEADLINE_SECONDS = 120;

/** Inputs of one registration, as the provider receives them (plain values). */
export interface AgentRegistrationInputs {
  /** CAIP-2, e.g. `eip155:84532`. */
  network: string;
  /** IdentityRegistry address. */
  registry: string;
  rpcUrl: string;
  agentURI: string;
  /** Extra on-chain metadata, stored as UTF-8 bytes. */
  metadata?: Record<string, string>;
  /** An existing agentId (decimal) to adopt instead of minting. */
  adoptAgentId?: string;
  /** Payout wallet to record with setAgentWallet (needs agentWalletKey). */
  agentWallet?: string;
  /** Secret. The key that owns the agent NFT and sends every transaction. */
  signerKey: string;
  /** Secret. The agentWallet's key, which must sign its consent. */
  agentWalletKey?: string;
  /** First block to search for a lost registration (RPCs limit log ranges); default 0. */
  searchFromBlock?: string;
}

/** Outputs (the state): the inputs plus what the chain assigned. */
export interface AgentRegistrationState extends AgentRegistrationInputs {
  agentId: string;
  /** Owner of the NFT as last seen on chain. */
  owner: string;
  /** The transaction that minted the agent ("" when unknown, e.g. adopted outside its search range). */
  txHash: string;
  /** `eip155:<chainId>:<registry>`. */
  agentRegistry: string;
}

export interface CheckFailure {
  property: string;
  reason: string;
}

export function isUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(isUnknown);
  if (value !== null && typeof value === "object") return Object.values(value).some(isUnknown);
  return false;
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const PRIVATE_KEY = /^0x[0-9a-fA-F]{64}$/;
const CAIP2_EIP155 = /^eip155:[1-9][0-9]{0,18}$/;
const UINT = /^(0|[1-9][0-9]{0,77})$/;

/** Validates inputs before anything touches a chain. Reasons never echo secret values. */
export function checkInputs(news: Partial<AgentRegistrationInputs>): CheckFailure[] {
  const failures: CheckFailure[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });
  const known = (v: unknown): boolean => v !== undefined && !isUnknown(v);

  if (known(news.network) && !CAIP2_EIP155.test(String(news.network))) {
    fail("network", `"${news.network}" is not a CAIP-2 EVM network: use eip155:<chainId>, e.g. eip155:84532`);
  } else if (known(news.network) && BigInt(String(news.network).slice(7)) > BigInt(Number.MAX_SAFE_INTEGER))
    fail("network", unsafeChainIdMessage(String(news.network)));
  if (news.network === undefined) fail("network", "network is required (CAIP-2, e.g. eip155:84532)");
  if (known(news.registry) && !ADDRESS.test(String(news.registry))) {
    fail("registry", `"${news.registry}" is not an address: set the IdentityRegistry address (0x + 40 hex)`);
  }
  if (news.registry === undefined) fail("registry", "registry is required (the IdentityRegistry address)");
  if (known(news.rpcUrl) && !/^(https?|wss?):\/\//.test(String(news.rpcUrl))) {
    fail("rpcUrl", "rpcUrl must be an http(s):// or ws(s):// JSON-RPC endpoint");
  }
  if (news.rpcUrl === undefined) fail("rpcUrl", "rpcUrl is required (a JSON-RPC endpoint of the chain)");
  if (known(news.agentURI) && String(news.agentURI).length === 0) {
    fail("agentURI", "agentURI must not be empty: point it at the agent's registration document");
  }
  if (news.agentURI === undefined) fail("agentURI", "agentURI is required");
  if (news.signerKey === undefined) {
    fail("signerKey", "signerKey is required: set the identity signer key as a secret");
  } else if (known(news.signerKey) && !PRIVATE_KEY.test(String(news.signerKey))) {
    fail("signerKey", "signerKey is not a 32-byte hex private key (0x + 64 hex characters)");
  }
  if (known(news.agentWalletKey) && !PRIVATE_KEY.test(String(news.agentWalletKey))) {
    fail("agentWalletKey", "agentWalletKey is not a 32-byte hex private key (0x + 64 hex characters)");
  }
  if (known(news.agentWallet) && !ADDRESS.test(String(news.agentWallet))) {
    fail("agentWallet", `"${news.agentWallet}" is not an address`);
  }
  if (known(news.adoptAgentId) && !UINT.test(String(news.adoptAgentId))) {
    fail("adoptAgentId", `"${news.adoptAgentId}" is not an agentId: use a non-negative decimal integer`);
  }
  if (known(news.searchFromBlock) && !UINT.test(String(news.searchFromBlock))) {
    fail("searchFromBlock", `"${news.searchFromBlock}" is not a block number`);
  }
  if (known(news.metadata)) {
    const metadata = news.metadata as unknown;
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      fail("metadata", "metadata must be a map of key to string value");
    } else {
      for (const [key, value] of Object.entries(metadata)) {
        if (key === RESERVED_METADATA_KEY) {
          fail("metadata", `"${RESERVED_METADATA_KEY}" is reserved by the registry: use agentWallet instead`);
        } else if (key.length === 0) {
          fail("metadata", "metadata keys must not be empty");
        } else if (!isUnknown(value) && typeof value !== "string") {
          fail("metadata", `metadata "${key}" must be a string`);
        }
      }
    }
  }
  return failures;
}

function sameAddress(a: string | undefined, b: string | undefined): boolean {
  return (a ?? "").toLowerCase() === (b ?? "").toLowerCase();
}

function sameMetadata(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const left = a ?? {};
  const right = b ?? {};
  const keys = new Set([...Object.keys(left), ...Object.keys(right)]);
  for (const key of keys) if (left[key] !== right[key]) return false;
  return true;
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
}

/**
 * Compares the stored state with new inputs. Ignores `__provider` (code edits are not changes)
 * and `searchFromBlock` (used by create only). A different chain, registry or adopted agentId
 * is another NFT, hence a replacement; anything unknown in preview counts as changed.
 */
export function diffRegistration(
  olds: Partial<AgentRegistrationState>,
  news: Partial<AgentRegistrationInputs>,
): DiffResult {
  const replaces: string[] = [];
  if (isUnknown(news.network) || olds.network !== news.network) replaces.push("network");
  if (isUnknown(news.registry) || !sameAddress(olds.registry, news.registry)) replaces.push("registry");
  if (
    news.adoptAgentId !== undefined &&
    (isUnknown(news.adoptAgentId) || news.adoptAgentId !== olds.agentId)
  ) {
    replaces.push("adoptAgentId");
  }

  const updates: boolean[] = [
    isUnknown(news.agentURI) || olds.agentURI !== news.agentURI,
    isUnknown(news.rpcUrl) || olds.rpcUrl !== news.rpcUrl,
    isUnknown(news.signerKey) || olds.signerKey !== news.signerKey,
    isUnknown(news.metadata) || !sameMetadata(olds.metadata, news.metadata),
    isUnknown(news.agentWallet) || !sameAddress(olds.agentWallet, news.agentWallet),
    isUnknown(news.agentWalletKey) || (olds.agentWalletKey ?? "") !== (news.agentWalletKey ?? ""),
  ];
  return { changes: replaces.length > 0 || updates.some(Boolean), replaces };
}

/** `eip155:<chainId>:<registry>`, the ERC-8004 agentRegistry identifier. */
export function agentRegistryOf(network: string, registry: string): string {
  return `${network}:${registry}`;
}

/** The resource id: the agent, globally. */
export function registrationId(network: string, registry: string, agentId: string): string {
  return `${agentRegistryOf(network, registry)}#${agentId}`;
}

/**
 * The chain id as viem takes it (a JS number). A 64-bit chain id above 2^53 would be rounded to
 * another chain, so it is refused instead (checkInputs reports it before anything runs).
 */
export function chainIdOfNetwork(network: string): number {
  const id = BigInt(network.slice("eip155:".length));
  if (id > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(unsafeChainIdMessage(network));
  return Number(id);
}

function unsafeChainIdMessage(network: string): string {
  return `chain id of ${network} is above 2^53-1, which viem (the EVM client) cannot address exactly: such a chain cannot be registered on`;
}

export interface RegistrationDocument {
  type: string;
  name: string;
  description: string;
  image: string;
  services: { name: string; endpoint: string }[];
  x402Support: boolean;
  active: boolean;
  /** uint256: exact, written by exactJson as an integer literal. */
  registrations: { agentId: bigint; agentRegistry: string }[];
}

/** Parses a `data:application/json[;base64],...` URI; undefined for anything else or bad JSON. */
export function parseDataUriJson(uri: string): Record<string, unknown> | undefined {
  const match = /^data:application\/json(;[^,]*)?,(.*)$/s.exec(uri);
  if (!match) return undefined;
  const params = match[1] ?? "";
  const payload = match[2] ?? "";
  try {
    const text = params.includes(";base64")
      ? Buffer.from(payload, "base64").toString("utf8")
      : decodeURIComponent(payload);
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The document an agent points at once its stack is destroyed: still a valid registration-v1
 * file (the NFT cannot be burned), with no services and `active: false`.
 */
export function tombstoneDocument(args: {
  agentId: string;
  agentRegistry: string;
  name?: string | undefined;
}): RegistrationDocument {
  return {
    type: REGISTRATION_V1,
    name: args.name && args.name.length > 0 ? args.name : `Agent ${args.agentId}`,
    description: "This agent has been retired by its owner and serves nothing.",
    image: DEFAULT_AGENT_IMAGE,
    services: [],
    x402Support: false,
    active: false,
    registrations: [{ agentId: BigInt(args.agentId), agentRegistry: args.agentRegistry }],
  };
}

export function tombstoneUri(args: Parameters<typeof tombstoneDocument>[0]): string {
  const json = exactJson(tombstoneDocument(args));
  return `data:application/json;base64,${Buffer.from(json, "utf8").toString("base64")}`;
}

/** The agent's name from its current URI when that is an on-chain document (kept in the tombstone). */
export function nameFromUri(uri: string): string | undefined {
  const doc = parseDataUriJson(uri);
  return typeof doc?.name === "string" ? doc.name : undefined;
}

/** A decoded `Registered` log. */
export interface RegisteredEvent {
  agentId: bigint;
  agentURI: string;
  owner: string;
  txHash: string;
  blockNumber: bigint;
}

/**
 * Of the signer's `Registered` events, the ones minted with `agentURI`, newest (highest
 * agentId) first: the candidates a crashed create may have left behind.
 */
export function registrationCandidates(
  events: readonly RegisteredEvent[],
  agentURI: string,
): RegisteredEvent[] {
  return events
    .filter((e) => e.agentURI === agentURI)
    .sort((a, b) => (a.agentId === b.agentId ? 0 : a.agentId > b.agentId ? -1 : 1));
}

/** Metadata value as the registry stores it: UTF-8 bytes, hex-encoded. */
export function metadataBytes(value: string): Hex {
  return `0x${Buffer.from(value, "utf8").toString("hex")}`;
}

export function metadataString(bytes: string): string {
  return Buffer.from(bytes.replace(/^0x/, ""), "hex").toString("utf8");
}

export interface MetadataWrite {
  key: string;
  value: Hex;
}

/**
 * Read-before-write: the setMetadata calls that make the chain match `desired`. Keys no longer
 * desired but managed before are cleared (empty bytes); keys already right are skipped.
 */
export function metadataWrites(
  desired: Record<string, string> | undefined,
  onChain: Record<string, string>,
  previouslyManaged: readonly string[],
): MetadataWrite[] {
  const writes: MetadataWrite[] = [];
  for (const [key, value] of Object.entries(desired ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const wanted = metadataBytes(value);
    if ((onChain[key] ?? "0x").toLowerCase() !== wanted.toLowerCase()) writes.push({ key, value: wanted });
  }
  for (const key of [...previouslyManaged].sort()) {
    if (desired && key in desired) continue;
    if ((onChain[key] ?? "0x") !== "0x") writes.push({ key, value: "0x" });
  }
  return writes;
}

/** Plain JSON for the engine: drops undefined (protobuf Struct rejects it) and stringifies bigints. */
export function plainOutputs<T extends object>(value: T): Record<string, unknown> {
  const clean = (v: unknown): unknown => {
    if (typeof v === "bigint") return v.toString();
    if (Array.isArray(v)) return v.filter((x) => x !== undefined).map(clean);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = clean(x);
      return out;
    }
    return v;
  };
  return clean(value) as Record<string, unknown>;
}

/** The error to show when the signer does not own the agent it should manage. */
export function notOwnerMessage(args: {
  agentId: string;
  owner: string;
  signer: string;
  network: string;
  adopting: boolean;
}): string {
  const fix = args.adopting
    ? `use the owner's key as the identity signer, or drop identity.agentIds["${args.network}"] to mint a new agent`
    : "transfer it back to the signer, or use the owner's key as the identity signer";
  return `agentId ${args.agentId} on ${args.network} is owned by ${args.owner}, not the signer ${args.signer}: ${fix}`;
}
