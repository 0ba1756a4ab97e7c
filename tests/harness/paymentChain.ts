import {
  type Address,
  createPublicClient,
  createWalletClient,
  erc20Abi,
  getAddress,
  type Hex,
  http,
  type PublicClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { multicallArtifact, testUsdcArtifact } from "../../contracts/compile";
import { ANVIL_KEYS, type Anvil, startAnvil } from "./anvil";

/** Where x402's EVM facilitator expects Multicall3 (the same address on every chain). */
export const MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11";

export interface PaymentChain {
  readonly anvil: Anvil;
  readonly network: `eip155:${number}`;
  readonly client: PublicClient;
  /** The USDC-like EIP-3009 token, as a ServiceOffer asset. */
  readonly asset: {
    address: Address;
    symbol: string;
    decimals: number;
    transferMethod: "eip3009";
    eip712Name: string;
    eip712Version: string;
  };
  balanceOf(owner: Address): Promise<bigint>;
  mint(to: Address, amount: bigint): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real chain for payment tests: anvil with Base Sepolia's chain id (so v1 buyers' legacy name
 * "base-sepolia" resolves to it too), a USDC-like EIP-3009 token, and Multicall at its
 * canonical address.
 */
export async function startPaymentChain(logDir: string): Promise<PaymentChain> {
  const anvil = await startAnvil({ logDir, chainId: 84532 });
  const client = createPublicClient({ transport: http(anvil.rpcUrl) }) as PublicClient;
  const deployer = createWalletClient({
    account: privateKeyToAccount(ANVIL_KEYS[0] as Hex),
    transport: http(anvil.rpcUrl),
  });
  const deploy = async (artifact: { abi: readonly unknown[]; bytecode: Hex }, args: unknown[] = []) => {
    const hash = await deployer.deployContract({
      abi: artifact.abi,
      bytecode: artifact.bytecode,
      args,
      chain: null,
    });
    const receipt = await client.waitForTransactionReceipt({ hash });
    return getAddress(receipt.contractAddress!);
  };
  const usdc = testUsdcArtifact();
  const token = await deploy(usdc, ["USD Coin", "2"]);
  const multicall = await deploy(multicallArtifact());
  const code = await client.getCode({ address: multicall });
  await client.request({ method: "anvil_setCode" as never, params: [MULTICALL3_ADDRESS, code] as never });

  return {
    anvil,
    network: "eip155:84532",
    client,
    asset: {
      address: token,
      symbol: "USDC",
      decimals: 6,
      transferMethod: "eip3009",
      eip712Name: "USD Coin",
      eip712Version: "2",
    },
    balanceOf: (owner) =>
      client.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [owner] }),
    async mint(to, amount) {
      const hash = await deployer.writeContract({
        address: token,
        abi: usdc.abi,
        functionName: "mint",
        args: [to, amount],
        chain: null,
      });
      await client.waitForTransactionReceipt({ hash });
    },
    stop: () => anvil.stop(),
  };
}
