import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  x402ExactPermit2ProxyAddress,
  PERMIT2_ADDRESS as x402Permit2Address,
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";
import {
  type Address,
  createPublicClient,
  createWalletClient,
  erc20Abi,
  getAddress,
  type Hex,
  http,
  maxUint256,
  type PublicClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  multicallArtifact,
  permit2Artifact,
  testTokenArtifact,
  testUsdcArtifact,
  universalSigValidatorArtifact,
  x402BatchSettlementArtifact,
  x402Erc3009DepositCollectorArtifact,
  x402ExactPermit2ProxyArtifact,
  x402UptoPermit2ProxyArtifact,
} from "../../contracts/compile";
import { ANVIL_KEYS, type Anvil, startAnvil } from "./anvil";

/** Where x402's EVM facilitator expects Multicall3 (the same address on every chain). */
export const MULTICALL3_ADDRESS = "0xcA11bde05977b3631167028862bE2a173976CA11";
/** Where x402-rs's EVM facilitator expects an ERC-6492 universal signature validator (it will not start without code there). */
export const UNIVERSAL_SIG_VALIDATOR_ADDRESS: Address = "0xdAcD51A54883eb67D95FAEb2BBfdC4a9a6BD2a3B";
/** Uniswap's Permit2 and x402's exact Permit2 proxy, where @x402/evm expects them. */
export const PERMIT2_ADDRESS: Address = x402Permit2Address;
export const X402_EXACT_PERMIT2_PROXY_ADDRESS: Address = x402ExactPermit2ProxyAddress;
/** x402's upto Permit2 proxy: settles the metered amount, up to the signed maximum. */
export const X402_UPTO_PERMIT2_PROXY_ADDRESS: Address = x402UptoPermit2ProxyAddress;
/** x402's batch-settlement channel contract and its ERC-3009 deposit collector. */
export const X402_BATCH_SETTLEMENT_ADDRESS: Address = BATCH_SETTLEMENT_ADDRESS;
export const X402_ERC3009_DEPOSIT_COLLECTOR_ADDRESS: Address = ERC3009_DEPOSIT_COLLECTOR_ADDRESS;

/** A plain ERC-20 that x402 pays through Permit2. */
export interface Permit2Token {
  readonly asset: {
    address: Address;
    symbol: string;
    decimals: number;
    transferMethod: "permit2";
    /** The token's own EIP-712 domain, for its EIP-2612 permits (Permit2 signatures use Permit2's). */
    eip712Name: string;
    eip712Version: string;
    eip2612: true;
  };
  balanceOf(owner: Address): Promise<bigint>;
  mint(to: Address, amount: bigint): Promise<void>;
  /** The one-time on-chain step a Permit2 payer takes: approve Permit2 to move the token. */
  approvePermit2(ownerKey: Hex): Promise<void>;
  /** What `owner` lets Permit2 move. */
  permit2Allowance(owner: Address): Promise<bigint>;
}

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
  /** A second asset, paid through Permit2 and x402's Permit2 proxy. */
  readonly permit2Token: Permit2Token;
  balanceOf(owner: Address): Promise<bigint>;
  mint(to: Address, amount: bigint): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real chain for payment tests: anvil with Base Sepolia's chain id (so v1 buyers' legacy name
 * "base-sepolia" resolves to it too), a USDC-like EIP-3009 token, a plain ERC-20, and Multicall,
 * Permit2, x402's exact and upto Permit2 proxies, x402's batch-settlement contract and its ERC-3009
 * deposit collector, and an ERC-6492 signature validator at their canonical addresses (our own contracts with
 * the same interfaces and signature hashing; see contracts/).
 */
export async function startPaymentChain(logDir: string, host?: string): Promise<PaymentChain> {
  const anvil = await startAnvil({ logDir, chainId: 84532, ...(host ? { host } : {}) });
  // cacheTime 0: viem otherwise answers getBlockNumber from a 4 s cache, and tests that count what
  // happened since a block would see the past (tests/integration/paymentChain.test.ts).
  const client = createPublicClient({ transport: http(anvil.rpcUrl), cacheTime: 0 }) as PublicClient;
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
  /** Deploys, then copies the runtime code to the address the x402 SDK expects. */
  const deployAt = async (canonical: Address, artifact: { abi: readonly unknown[]; bytecode: Hex }) => {
    const code = await client.getCode({ address: await deploy(artifact) });
    await client.request({ method: "anvil_setCode" as never, params: [canonical, code] as never });
  };
  await deployAt(MULTICALL3_ADDRESS, multicallArtifact());
  await deployAt(PERMIT2_ADDRESS, permit2Artifact());
  await deployAt(X402_EXACT_PERMIT2_PROXY_ADDRESS, x402ExactPermit2ProxyArtifact());
  await deployAt(X402_UPTO_PERMIT2_PROXY_ADDRESS, x402UptoPermit2ProxyArtifact());
  await deployAt(UNIVERSAL_SIG_VALIDATOR_ADDRESS, universalSigValidatorArtifact());
  await deployAt(X402_BATCH_SETTLEMENT_ADDRESS, x402BatchSettlementArtifact());
  await deployAt(X402_ERC3009_DEPOSIT_COLLECTOR_ADDRESS, x402Erc3009DepositCollectorArtifact());
  const plain = testTokenArtifact();
  const plainToken = await deploy(plain, ["Test Dollar", "TDOL", 6]);
  const mintOf = (address: Address, abi: readonly unknown[]) => async (to: Address, amount: bigint) => {
    const hash = await deployer.writeContract({
      address,
      abi,
      functionName: "mint",
      args: [to, amount],
      chain: null,
    });
    await client.waitForTransactionReceipt({ hash });
  };
  const balanceOfToken = (address: Address) => (owner: Address) =>
    client.readContract({ address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

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
    permit2Token: {
      asset: {
        address: plainToken,
        symbol: "TDOL",
        decimals: 6,
        transferMethod: "permit2",
        eip712Name: "Test Dollar",
        eip712Version: "1",
        eip2612: true,
      },
      balanceOf: balanceOfToken(plainToken),
      mint: mintOf(plainToken, plain.abi),
      permit2Allowance: (owner) =>
        client.readContract({
          address: plainToken,
          abi: erc20Abi,
          functionName: "allowance",
          args: [owner, PERMIT2_ADDRESS],
        }),
      async approvePermit2(ownerKey) {
        const owner = createWalletClient({
          account: privateKeyToAccount(ownerKey),
          transport: http(anvil.rpcUrl),
        });
        const hash = await owner.writeContract({
          address: plainToken,
          abi: erc20Abi,
          functionName: "approve",
          args: [PERMIT2_ADDRESS, maxUint256],
          chain: null,
        });
        await client.waitForTransactionReceipt({ hash });
      },
    },
    balanceOf: balanceOfToken(token),
    mint: mintOf(token, usdc.abi),
    stop: () => anvil.stop(),
  };
}
