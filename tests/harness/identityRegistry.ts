import {
  type Address,
  createPublicClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  parseAbi,
  parseEventLogs,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { identityRegistryArtifact } from "../../contracts/compile";
import { ANVIL_KEYS } from "./anvil";

/** Deploys the test ERC-8004 IdentityRegistry on a chain and returns its address. */
export async function deployIdentityRegistry(rpcUrl: string): Promise<Address> {
  const { abi, bytecode } = identityRegistryArtifact();
  const deployer = createWalletClient({
    account: privateKeyToAccount(ANVIL_KEYS[0]),
    transport: http(rpcUrl),
  });
  const hash = await deployer.deployContract({ abi, bytecode, chain: null });
  const receipt = await createPublicClient({ transport: http(rpcUrl) }).waitForTransactionReceipt({ hash });
  if (!receipt.contractAddress) throw new Error("the IdentityRegistry did not deploy");
  return getAddress(receipt.contractAddress);
}

const REGISTER_ABI = parseAbi([
  "function register(string agentURI) returns (uint256 agentId)",
  "event Registered(uint256 indexed agentId, string agentURI, address indexed owner)",
]);

/** Mints an agent whose tokenURI is `agentURI`, as `ownerKey`; returns its id (decimal). */
export async function registerAgent(
  rpcUrl: string,
  registry: Address,
  agentURI: string,
  ownerKey: Hex = ANVIL_KEYS[1],
): Promise<string> {
  const wallet = createWalletClient({ account: privateKeyToAccount(ownerKey), transport: http(rpcUrl) });
  const hash = await wallet.writeContract({
    address: registry,
    abi: REGISTER_ABI,
    functionName: "register",
    args: [agentURI],
    chain: null,
  });
  const receipt = await createPublicClient({ transport: http(rpcUrl) }).waitForTransactionReceipt({ hash });
  const [event] = parseEventLogs({ abi: REGISTER_ABI, logs: receipt.logs, eventName: "Registered" });
  if (!event) throw new Error("register() emitted no Registered event");
  return event.args.agentId.toString();
}
