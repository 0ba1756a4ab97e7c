import * as pulumi from "@pulumi/pulumi";
import type {
  Account,
  Chain,
  GetContractReturnType,
  Hex,
  ParseAbi,
  PublicClient,
  Transport,
  WalletClient,
} from "viem";
import {
  AGENT_WALLET_DEADLINE_SECONDS,
  AGENT_WALLET_DOMAIN,
  AGENT_WALLET_TYPES,
  type AgentRegistrationInputs,
  type AgentRegistrationState,
  agentRegistryOf,
  chainIdOfNetwork,
  checkInputs,
  diffRegistration,
  IDENTITY_REGISTRY_ABI,
  metadataString,
  metadataWrites,
  nameFromUri,
  notOwnerMessage,
  plainOutputs,
  type RegisteredEvent,
  registrationCandidates,
  registrationId,
  tombstoneUri,
} from "./agentRegistrationLogic";

/** Inputs of an AgentRegistration. */
export interface AgentRegistrationArgs {
  /** CAIP-2 network, e.g. `eip155:84532`. */
  network: pulumi.Input<string>;
  /** IdentityRegistry address on that network. */
  registry: pulumi.Input<string>;
  /** JSON-RPC endpoint (pass a secret if it embeds an API key: it then stays encrypted in state). */
  rpcUrl: pulumi.Input<string>;
  /** Where the registration document is served; must be stable. */
  agentURI: pulumi.Input<string>;
  /** The key that owns the agent and sends its transactions. Always stored as a secret. */
  signerKey: pulumi.Input<string>;
  /** Extra on-chain metadata (UTF-8 strings); the key `agentWallet` is reserved. */
  metadata?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Adopt this existing agentId (decimal) instead of minting; the signer must own it. */
  adoptAgentId?: pulumi.Input<string>;
  /** Payout wallet to record on chain (setAgentWallet); needs `agentWalletKey` unless it is the signer. */
  agentWallet?: pulumi.Input<string>;
  /** The agentWallet's key, which signs its EIP-712 consent. Always stored as a secret. */
  agentWalletKey?: pulumi.Input<string>;
  /** First block to search for a registration lost by a crash (default 0); set it on chains whose RPC limits log ranges. */
  searchFromBlock?: pulumi.Input<string>;
}

type State = AgentRegistrationState;

type RegistryAbi = ParseAbi<typeof IDENTITY_REGISTRY_ABI>;
type RegistryContract = GetContractReturnType<
  RegistryAbi,
  { public: PublicClient; wallet: WalletClient<Transport, Chain, Account> }
>;

/** Everything a method needs to talk to the registry, built inside the method (never captured). */
interface Chainside {
  viem: typeof import("viem");
  publicClient: PublicClient;
  /** The IdentityRegistry as one typed client: its ABI is parsed once per operation. */
  contract: RegistryContract;
  abi: RegistryAbi;
  signer: `0x${string}`;
  registry: `0x${string}`;
  network: string;
  agentRegistry: string;
}

function errorText(err: unknown): string {
  const e = err as { shortMessage?: string; message?: string };
  return (e.shortMessage ?? e.message ?? String(err)).split("\n")[0] ?? String(err);
}

/** The account of a secret key; the error never carries the key (noble's message would echo it). */
function accountOf(key: string, name: "signerKey" | "agentWalletKey") {
  const { privateKeyToAccount } = require("viem/accounts") as typeof import("viem/accounts");
  try {
    return privateKeyToAccount(key as Hex);
  } catch {
    throw new Error(`${name} is not a valid secp256k1 private key: set it to the account's 32-byte hex key`);
  }
}

async function connect(inputs: AgentRegistrationInputs): Promise<Chainside> {
  // Required inside each method: the provider runs in a separate process from a serialized closure.
  const viem = require("viem") as typeof import("viem");
  const chainId = chainIdOfNetwork(inputs.network);
  const chain = viem.defineChain({
    id: chainId,
    name: inputs.network,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [inputs.rpcUrl] } },
  });
  const transport = inputs.rpcUrl.startsWith("ws") ? viem.webSocket(inputs.rpcUrl) : viem.http(inputs.rpcUrl);
  const publicClient = viem.createPublicClient({ chain, transport }) as PublicClient;
  const account = accountOf(inputs.signerKey, "signerKey");
  const walletClient = viem.createWalletClient({ chain, transport, account });
  let served: number;
  try {
    served = await publicClient.getChainId();
  } catch (err) {
    throw new Error(
      `cannot reach the RPC for ${inputs.network}: ${errorText(err)}; check identity.rpcUrls["${inputs.network}"]`,
      { cause: err },
    );
  }
  if (served !== chainId) {
    throw new Error(
      `the RPC for ${inputs.network} serves chain ${served}, not ${chainId}: fix identity.rpcUrls["${inputs.network}"]`,
    );
  }
  const registry = viem.getAddress(inputs.registry);
  if ((await publicClient.getCode({ address: registry })) === undefined) {
    throw new Error(
      `no contract at ${registry} on ${inputs.network}: set identity.registries["${inputs.network}"] to the IdentityRegistry address`,
    );
  }
  const abi = viem.parseAbi(IDENTITY_REGISTRY_ABI);
  const contract = viem.getContract({
    address: registry,
    abi,
    client: { public: publicClient, wallet: walletClient },
  });
  return {
    viem,
    publicClient,
    contract,
    abi,
    signer: account.address,
    registry,
    network: inputs.network,
    agentRegistry: agentRegistryOf(inputs.network, registry),
  };
}

/** Whether a contract call reverted with the custom error `errorName` (found by walking viem's error chain). */
function revertedWith(viem: typeof import("viem"), err: unknown, errorName: string): boolean {
  if (!(err instanceof viem.BaseError)) return false;
  const revert = err.walk((e) => e instanceof viem.ContractFunctionRevertedError);
  return revert instanceof viem.ContractFunctionRevertedError && revert.data?.errorName === errorName;
}

/** The current owner, or undefined when the agentId was never minted on this registry. */
async function ownerOf(c: Chainside, agentId: bigint): Promise<`0x${string}` | undefined> {
  try {
    return await c.contract.read.ownerOf([agentId]);
  } catch (err) {
    if (revertedWith(c.viem, err, "ERC721NonexistentToken")) return undefined;
    throw err;
  }
}

async function tokenURI(c: Chainside, agentId: bigint): Promise<string> {
  return c.contract.read.tokenURI([agentId]);
}

async function requireOwnedBySigner(c: Chainside, agentId: bigint, adopting: boolean): Promise<void> {
  const owner = await ownerOf(c, agentId);
  if (owner === undefined) {
    throw new Error(
      `agentId ${agentId} does not exist on ${c.agentRegistry}: ${
        adopting
          ? `check identity.agentIds["${c.network}"]`
          : "the chain may have been reset; run `pulumi refresh`"
      }`,
    );
  }
  if (owner.toLowerCase() !== c.signer.toLowerCase()) {
    throw new Error(
      notOwnerMessage({ agentId: String(agentId), owner, signer: c.signer, network: c.network, adopting }),
    );
  }
}

type RegistryWrite =
  | { functionName: "register"; args: readonly [string] }
  | { functionName: "setAgentURI"; args: readonly [bigint, string] }
  | { functionName: "setMetadata"; args: readonly [bigint, string, Hex] }
  | { functionName: "setAgentWallet"; args: readonly [bigint, `0x${string}`, bigint, Hex] };

function write(c: Chainside, call: RegistryWrite): Promise<Hex> {
  switch (call.functionName) {
    case "register":
      return c.contract.write.register(call.args);
    case "setAgentURI":
      return c.contract.write.setAgentURI(call.args);
    case "setMetadata":
      return c.contract.write.setMetadata(call.args);
    case "setAgentWallet":
      return c.contract.write.setAgentWallet(call.args);
  }
}

/** Sends one transaction and waits for it; a revert or a failed receipt is an error naming the call. */
async function send(c: Chainside, call: RegistryWrite) {
  let hash: Hex;
  try {
    hash = await write(c, call);
  } catch (err) {
    throw new Error(`${call.functionName} on ${c.agentRegistry} failed: ${errorText(err)}`, { cause: err });
  }
  const receipt = await c.publicClient.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") {
    throw new Error(`${call.functionName} transaction ${hash} on ${c.network} reverted`);
  }
  return receipt;
}

/** The signer's Registered events on this registry (owner is indexed, so the node filters). */
async function signerRegistrations(c: Chainside, fromBlock: bigint): Promise<RegisteredEvent[]> {
  try {
    const logs = await c.contract.getEvents.Registered({ owner: c.signer }, { fromBlock, toBlock: "latest" });
    return logs.map((log) => ({
      agentId: log.args.agentId ?? 0n,
      agentURI: log.args.agentURI ?? "",
      owner: log.args.owner ?? "",
      txHash: log.transactionHash ?? "",
      blockNumber: log.blockNumber ?? 0n,
    }));
  } catch (err) {
    throw new Error(
      `cannot search the signer's Registered events on ${c.network} from block ${fromBlock}: ${errorText(err)}; ` +
        "set searchFromBlock to a block shortly before the signer's first registration",
      { cause: err },
    );
  }
}

/** A registration a crashed create left behind: minted by the signer with this URI, still theirs and unchanged. */
async function findLostRegistration(
  c: Chainside,
  agentURI: string,
  fromBlock: bigint,
): Promise<RegisteredEvent | undefined> {
  // A signer that owns no agent has nothing to adopt: skip the log search (cheap, and immune to RPC range limits).
  const owned = await c.contract.read.balanceOf([c.signer]);
  if (owned === 0n) return undefined;
  for (const candidate of registrationCandidates(await signerRegistrations(c, fromBlock), agentURI)) {
    const owner = await ownerOf(c, candidate.agentId);
    if (owner?.toLowerCase() !== c.signer.toLowerCase()) continue;
    if ((await tokenURI(c, candidate.agentId)) === agentURI) return candidate;
  }
  return undefined;
}

async function mint(c: Chainside, agentURI: string): Promise<{ agentId: bigint; txHash: string }> {
  const receipt = await send(c, { functionName: "register", args: [agentURI] });
  const ours = receipt.logs.filter((log) => log.address.toLowerCase() === c.registry.toLowerCase());
  const [registered] = c.viem.parseEventLogs({ abi: c.abi, logs: ours, eventName: "Registered" });
  if (registered) return { agentId: registered.args.agentId, txHash: receipt.transactionHash };
  throw new Error(
    `register transaction ${receipt.transactionHash} on ${c.network} emitted no Registered event: is ${c.registry} an ERC-8004 IdentityRegistry?`,
  );
}

async function readMetadata(
  c: Chainside,
  agentId: bigint,
  keys: readonly string[],
): Promise<Record<string, Hex>> {
  const values: Record<string, Hex> = {};
  for (const key of keys) values[key] = await c.contract.read.getMetadata([agentId, key]);
  return values;
}

async function agentWalletOf(c: Chainside, agentId: bigint): Promise<`0x${string}`> {
  return c.contract.read.getAgentWallet([agentId]);
}

async function reconcileAgentWallet(
  c: Chainside,
  agentId: bigint,
  inputs: AgentRegistrationInputs,
): Promise<void> {
  if (!inputs.agentWallet) return;
  const wanted = c.viem.getAddress(inputs.agentWallet);
  // Compared with the chain, not with what register() once recorded: the wallet may have been
  // changed since (by another setAgentWallet, or cleared by a transfer).
  if ((await agentWalletOf(c, agentId)) === wanted) return;
  // The registry takes the new wallet's own consent; the signer consents for itself.
  if (wanted !== c.signer && !inputs.agentWalletKey) {
    throw new Error(
      `agentWallet ${wanted} must consent to being recorded: pass agentWalletKey (its key, as a secret), or use the signer ${c.signer}`,
    );
  }
  const wallet = accountOf(
    wanted === c.signer ? inputs.signerKey : inputs.agentWalletKey!,
    wanted === c.signer ? "signerKey" : "agentWalletKey",
  );
  if (wallet.address !== wanted) {
    throw new Error(
      `agentWalletKey belongs to ${wallet.address}, not agentWallet ${wanted}: pass the wallet's own key`,
    );
  }
  // The registry bounds the deadline by the clock of the block that includes the call: at least
  // the latest block's, and on a chain that mines only on demand (a dev node idle for minutes)
  // the wall clock's, else the deadline has passed before the call is mined.
  const block = await c.publicClient.getBlock({ blockTag: "latest" });
  const now = BigInt(Math.floor(Date.now() / 1000));
  const deadline = (block.timestamp > now ? block.timestamp : now) + BigInt(AGENT_WALLET_DEADLINE_SECONDS);
  const signature = await wallet.signTypedData({
    domain: { ...AGENT_WALLET_DOMAIN, chainId: chainIdOfNetwork(c.network), verifyingContract: c.registry },
    types: AGENT_WALLET_TYPES,
    primaryType: "AgentWalletSet",
    message: { agentId, newWallet: wanted, owner: c.signer, deadline },
  });
  await send(c, { functionName: "setAgentWallet", args: [agentId, wanted, deadline, signature] });
}

/** Makes URI, metadata and wallet on chain match the inputs, sending only what differs. */
async function reconcile(
  c: Chainside,
  agentId: bigint,
  inputs: AgentRegistrationInputs,
  previouslyManagedKeys: readonly string[],
): Promise<void> {
  if ((await tokenURI(c, agentId)) !== inputs.agentURI) {
    await send(c, { functionName: "setAgentURI", args: [agentId, inputs.agentURI] });
  }
  const keys = [...new Set([...Object.keys(inputs.metadata ?? {}), ...previouslyManagedKeys])];
  const onChain = await readMetadata(c, agentId, keys);
  for (const write of metadataWrites(inputs.metadata, onChain, previouslyManagedKeys)) {
    await send(c, { functionName: "setMetadata", args: [agentId, write.key, write.value] });
  }
  await reconcileAgentWallet(c, agentId, inputs);
}

function outputs(inputs: AgentRegistrationInputs, c: Chainside, agentId: bigint, txHash: string): State {
  return plainOutputs({
    ...inputs,
    registry: c.registry,
    agentId: agentId.toString(),
    owner: c.signer,
    txHash,
    agentRegistry: c.agentRegistry,
  }) as unknown as State;
}

/** Exported for the serialization test only; programs use the AgentRegistration class. */
export const agentRegistrationProvider: pulumi.dynamic.ResourceProvider<AgentRegistrationInputs, State> = {
  async check(_olds, news) {
    return { inputs: news, failures: checkInputs(news) };
  },

  async diff(_id, olds, news) {
    return diffRegistration(olds, news);
  },

  async create(inputs) {
    const c = await connect(inputs);
    let agentId: bigint;
    let txHash = "";
    if (inputs.adoptAgentId !== undefined) {
      agentId = BigInt(inputs.adoptAgentId);
      await requireOwnedBySigner(c, agentId, true);
      // Best effort: the mint may predate searchFromBlock, or the agent may have been transferred to the signer.
      const minted = await signerRegistrations(c, BigInt(inputs.searchFromBlock ?? "0")).catch(() => []);
      txHash = minted.find((e) => e.agentId === agentId)?.txHash ?? "";
    } else {
      // Idempotent: a previous run may have minted and crashed before the state was saved.
      const lost = await findLostRegistration(c, inputs.agentURI, BigInt(inputs.searchFromBlock ?? "0"));
      ({ agentId, txHash } = lost ?? (await mint(c, inputs.agentURI)));
    }
    await reconcile(c, agentId, inputs, []);
    return {
      id: registrationId(inputs.network, c.registry, agentId.toString()),
      outs: outputs(inputs, c, agentId, txHash),
    };
  },

  async update(_id, olds, news) {
    const c = await connect(news);
    const agentId = BigInt(olds.agentId);
    await requireOwnedBySigner(c, agentId, false);
    await reconcile(c, agentId, news, Object.keys(olds.metadata ?? {}));
    return { outs: outputs(news, c, agentId, olds.txHash) };
  },

  async read(id, props) {
    if (!props?.agentId) return { id, ...(props ? { props } : {}) };
    const c = await connect(props);
    const agentId = BigInt(props.agentId);
    const owner = await ownerOf(c, agentId);
    // A blank id tells the engine the agent is gone (e.g. a reset dev chain): the next up registers again.
    if (owner === undefined) return { id: "" };
    const metadataKeys = Object.keys(props.metadata ?? {});
    const onChain = await readMetadata(c, agentId, metadataKeys);
    const metadata: Record<string, string> = {};
    for (const key of metadataKeys) metadata[key] = metadataString(onChain[key] ?? "0x");
    return {
      id,
      props: plainOutputs({
        ...props,
        owner,
        agentURI: await tokenURI(c, agentId),
        ...(props.metadata !== undefined ? { metadata } : {}),
        // A managed wallet is read back, so a change made outside Pulumi shows as drift and is restored.
        ...(props.agentWallet !== undefined ? { agentWallet: await agentWalletOf(c, agentId) } : {}),
      }) as unknown as State,
    };
  },

  async delete(_id, props) {
    const c = await connect(props);
    const agentId = BigInt(props.agentId);
    const owner = await ownerOf(c, agentId);
    if (owner === undefined) return; // Nothing left to retire.
    if (owner.toLowerCase() !== c.signer.toLowerCase()) {
      throw new Error(
        `cannot retire agentId ${agentId} on ${c.network}: it is owned by ${owner}, not the signer ${c.signer}; ` +
          "use the owner's key, or `pulumi state delete` the registration to forget it",
      );
    }
    const current = await tokenURI(c, agentId);
    const tombstone = tombstoneUri({
      agentId: agentId.toString(),
      agentRegistry: c.agentRegistry,
      name: nameFromUri(current),
    });
    if (current !== tombstone) await send(c, { functionName: "setAgentURI", args: [agentId, tombstone] });
  },
};

/**
 * An ERC-8004 agent registration on one chain: the agent NFT on the IdentityRegistry whose
 * tokenURI is the agentURI. Create mints (or finds the registration a crashed run left behind,
 * or adopts an explicit agentId); update calls setAgentURI / setMetadata / setAgentWallet only
 * for what differs on chain; delete points the URI at an inactive tombstone (the NFT stays);
 * refresh reads the owner, URI and metadata back from chain. Outputs: agentId, owner, txHash,
 * agentRegistry.
 *
 * The signer key is a secret input: the engine stores it encrypted in state, hands it to the
 * provider process only in plaintext memory, and it is never part of the provider's closure.
 */
export class AgentRegistration extends pulumi.dynamic.Resource {
  declare readonly agentId: pulumi.Output<string>;
  declare readonly owner: pulumi.Output<string>;
  declare readonly txHash: pulumi.Output<string>;
  declare readonly agentRegistry: pulumi.Output<string>;
  declare readonly agentURI: pulumi.Output<string>;
  declare readonly network: pulumi.Output<string>;
  declare readonly registry: pulumi.Output<string>;

  constructor(name: string, args: AgentRegistrationArgs, opts?: pulumi.CustomResourceOptions) {
    const secrets = args.agentWalletKey !== undefined ? ["signerKey", "agentWalletKey"] : ["signerKey"];
    super(
      agentRegistrationProvider,
      name,
      {
        agentId: undefined,
        owner: undefined,
        txHash: undefined,
        agentRegistry: undefined,
        ...args,
        signerKey: pulumi.secret(args.signerKey),
        ...(args.agentWalletKey !== undefined ? { agentWalletKey: pulumi.secret(args.agentWalletKey) } : {}),
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), ...secrets] },
      "obol",
      "AgentRegistration",
    );
  }
}
