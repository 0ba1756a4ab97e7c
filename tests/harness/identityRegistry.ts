import { type Address, createPublicClient, createWalletClient, getAddress, http } from "viem";
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
