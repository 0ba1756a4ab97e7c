/**
 * Compiles the test contracts in this directory with solc-js (the npm `solc` package, no
 * download) through its standard JSON interface, resolving `@openzeppelin/...` imports from
 * node_modules. Artifacts are cached in contracts/out/, keyed by a hash of the sources, the
 * compiler version, the OpenZeppelin version and the settings, so a test run compiles at most once.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export interface ContractArtifact {
  readonly contractName: string;
  readonly abi: readonly unknown[];
  readonly bytecode: `0x${string}`;
}

const CONTRACTS_DIR = __dirname;
const OUT_DIR = path.join(CONTRACTS_DIR, "out");
const NODE_MODULES = path.resolve(CONTRACTS_DIR, "../node_modules");

/** Anvil runs a post-Cancun hardfork; pinning the target keeps the bytecode independent of solc's default. */
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
} as const;

interface SolcOutput {
  errors?: { severity: "error" | "warning" | "info"; formattedMessage: string }[];
  contracts?: Record<string, Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>>;
}

interface Solc {
  version(): string;
  compile(
    input: string,
    callbacks: { import: (p: string) => { contents: string } | { error: string } },
  ): string;
}

function packageVersion(name: string): string {
  const file = path.join(NODE_MODULES, name, "package.json");
  return (JSON.parse(fs.readFileSync(file, "utf8")) as { version: string }).version;
}

function resolveImport(importPath: string): { contents: string } | { error: string } {
  const candidates = [path.join(NODE_MODULES, importPath), path.join(CONTRACTS_DIR, importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `${importPath} not found in node_modules or contracts/: run \`npm ci\`` };
}

function localSources(): Record<string, string> {
  const sources: Record<string, string> = {};
  for (const file of fs
    .readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith(".sol"))
    .sort()) {
    sources[file] = fs.readFileSync(path.join(CONTRACTS_DIR, file), "utf8");
  }
  return sources;
}

function cacheKey(sourceFile: string, source: string): string {
  return createHash("sha256")
    .update(
      JSON.stringify({
        sourceFile,
        source,
        // Local imports (e.g. the proxy importing Permit2.sol) must invalidate the cache too.
        siblings: localSources(),
        solc: packageVersion("solc"),
        openzeppelin: packageVersion("@openzeppelin/contracts"),
        settings: SETTINGS,
      }),
    )
    .digest("hex")
    .slice(0, 16);
}

/**
 * Returns the ABI and creation bytecode of `contractName` from `contracts/<sourceFile>`,
 * compiling only when no cached artifact matches the current sources.
 */
export function compileContract(sourceFile: string, contractName: string): ContractArtifact {
  const source = fs.readFileSync(path.join(CONTRACTS_DIR, sourceFile), "utf8");
  const cached = path.join(OUT_DIR, `${contractName}-${cacheKey(sourceFile, source)}.json`);
  if (fs.existsSync(cached)) return JSON.parse(fs.readFileSync(cached, "utf8")) as ContractArtifact;

  const solc = require("solc") as Solc;
  const input = { language: "Solidity", sources: { [sourceFile]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveImport })) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new Error(
      `solc ${solc.version()} failed on contracts/${sourceFile}:\n${errors.map((e) => e.formattedMessage).join("\n")}`,
    );
  }
  const compiled = output.contracts?.[sourceFile]?.[contractName];
  if (!compiled) throw new Error(`contracts/${sourceFile} does not define a contract named ${contractName}`);
  const artifact: ContractArtifact = {
    contractName,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
  };
  // Write then rename, so a concurrent test run never reads half a file.
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const tmp = `${cached}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(artifact, null, 2)}\n`);
  fs.renameSync(tmp, cached);
  return artifact;
}

/** The ERC-8004 IdentityRegistry used by the tests. */
export function identityRegistryArtifact(): ContractArtifact {
  return compileContract("IdentityRegistry.sol", "IdentityRegistry");
}

/** A USDC-like EIP-3009 token for payment tests. */
export function testUsdcArtifact(): ContractArtifact {
  return compileContract("TestUSDC.sol", "TestUSDC");
}

/** Multicall3's tryAggregate, which x402's EVM facilitator reads through. */
export function multicallArtifact(): ContractArtifact {
  return compileContract("Multicall.sol", "Multicall");
}

/** A plain ERC-20 (no EIP-3009): the asset of Permit2 payment tests. */
export function testTokenArtifact(): ContractArtifact {
  return compileContract("TestToken.sol", "TestToken");
}

/** Permit2's signature transfer, placed at Permit2's canonical address on test chains. */
export function universalSigValidatorArtifact(): ContractArtifact {
  return compileContract("UniversalSigValidator.sol", "UniversalSigValidator");
}

export function permit2Artifact(): ContractArtifact {
  return compileContract("Permit2.sol", "Permit2");
}

/** x402's exact Permit2 proxy, placed at its canonical address on test chains. */
export function x402ExactPermit2ProxyArtifact(): ContractArtifact {
  return compileContract("X402ExactPermit2Proxy.sol", "X402ExactPermit2Proxy");
}

/** x402's upto Permit2 proxy (settles any amount up to the signed maximum), at its canonical address on test chains. */
export function x402UptoPermit2ProxyArtifact(): ContractArtifact {
  return compileContract("X402UptoPermit2Proxy.sol", "X402UptoPermit2Proxy");
}

/** x402's batch-settlement channel contract, at its canonical address on test chains. */
export function x402BatchSettlementArtifact(): ContractArtifact {
  return compileContract("X402BatchSettlement.sol", "X402BatchSettlement");
}

/** x402's ERC-3009 deposit collector for batch-settlement channels, at its canonical address on test chains. */
export function x402Erc3009DepositCollectorArtifact(): ContractArtifact {
  return compileContract("X402BatchSettlement.sol", "X402Erc3009DepositCollector");
}
