import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import {
  type Account,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  type Hex,
  http,
  type PublicClient,
  parseAbi,
  type Transport,
  type WalletClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { identityRegistryArtifact } from "../../contracts/compile";
import {
  type AgentRegistrationInputs,
  IDENTITY_REGISTRY_ABI,
  parseDataUriJson,
} from "../../providers/agentRegistrationLogic";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../harness/anvil";
import { scratchDir } from "../harness/env";
import { fixtureStack } from "../harness/project";
import { outputCollector, TEST_PASSPHRASE } from "../harness/pulumi";

const ABI = parseAbi(IDENTITY_REGISTRY_ABI);
const SIGNER_KEY: Hex = ANVIL_KEYS[1];
const STRANGER_KEY: Hex = ANVIL_KEYS[2];
const signer = privateKeyToAccount(SIGNER_KEY);
const WALLET_KEY: Hex = generatePrivateKey();
const coldWallet = privateKeyToAccount(WALLET_KEY);

interface TestChain {
  readonly name: string;
  readonly network: string;
  readonly anvil: Anvil;
  readonly registry: `0x${string}`;
  readonly client: PublicClient;
  wallet(key: Hex): WalletClient<Transport, Chain, Account>;
}

/** One registration the fixture program declares: the provider's plain inputs, keys aside. */
type RegistrationConfig = Omit<AgentRegistrationInputs, "signerKey" | "agentWalletKey"> & { name: string };

interface Secret {
  ciphertext?: string;
}

interface Deployment {
  deployment: {
    resources: {
      urn: string;
      inputs?: Record<string, Secret | undefined>;
      outputs?: Record<string, Secret | undefined> & { agentURI?: string };
    }[];
  };
}

interface RegistrationOutputs {
  agentId: string;
  owner: string;
  txHash: string;
  agentRegistry: string;
  agentURI: string;
}

async function startChain(name: string, chainId: number, logDir: string): Promise<TestChain> {
  const anvil = await startAnvil({ logDir, chainId });
  const chain = defineChain({
    id: chainId,
    name,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [anvil.rpcUrl] } },
  });
  const client = createPublicClient({ chain, transport: http(anvil.rpcUrl) }) as PublicClient;
  const wallet = (key: Hex) =>
    createWalletClient({ chain, transport: http(anvil.rpcUrl), account: privateKeyToAccount(key) });
  const { abi, bytecode } = identityRegistryArtifact();
  const hash = await wallet(ANVIL_KEYS[0]).deployContract({ abi, bytecode });
  const receipt = await client.waitForTransactionReceipt({ hash });
  assert.ok(receipt.contractAddress, `the IdentityRegistry deployed on ${name}`);
  const registry = getAddress(receipt.contractAddress);
  return { name, network: `eip155:${chainId}`, anvil, registry, client, wallet };
}

/** Mints directly, outside Pulumi (a crashed run's lost registration, or someone else's agent). */
async function mintDirectly(chain: TestChain, key: Hex, agentURI: string): Promise<bigint> {
  const { result, request } = await chain.client.simulateContract({
    address: chain.registry,
    abi: ABI,
    functionName: "register",
    args: [agentURI],
    account: privateKeyToAccount(key),
  });
  const hash = await chain.wallet(key).writeContract(request);
  await chain.client.waitForTransactionReceipt({ hash });
  return result;
}

describe("ERC-8004 AgentRegistration through the real engine, on anvil", function () {
  this.timeout(10 * 60_000);

  let base: TestChain;
  let local: TestChain;
  let stack: Stack;
  let stateDir: string;
  const log = outputCollector();

  const nonce = (chain: TestChain) => chain.client.getTransactionCount({ address: signer.address });
  const tokenURI = (chain: TestChain, agentId: string) =>
    chain.client.readContract({
      address: chain.registry,
      abi: ABI,
      functionName: "tokenURI",
      args: [BigInt(agentId)],
    });
  const ownerOf = (chain: TestChain, agentId: string) =>
    chain.client.readContract({
      address: chain.registry,
      abi: ABI,
      functionName: "ownerOf",
      args: [BigInt(agentId)],
    });
  const agentWallet = (chain: TestChain) =>
    chain.client.readContract({
      address: chain.registry,
      abi: ABI,
      functionName: "getAgentWallet",
      args: [0n],
    });
  const registration = (chain: TestChain, agentURI: string, extra: Partial<RegistrationConfig> = {}) => ({
    name: chain.name,
    network: chain.network,
    registry: chain.registry,
    rpcUrl: chain.anvil.rpcUrl,
    agentURI,
    ...extra,
  });
  const configure = (registrations: RegistrationConfig[]) =>
    stack.setConfig("registrations", { value: JSON.stringify(registrations) });

  async function up(): Promise<Record<string, RegistrationOutputs>> {
    const result = await stack.up({ onOutput: log.onOutput });
    assert.equal(result.summary.result, "succeeded", log.text());
    return result.outputs.registrations?.value as Record<string, RegistrationOutputs>;
  }

  /**
   * `pulumi stack export` as a user runs it. (The Automation API's exportStack() passes
   * --show-secrets, so it always contains the decrypted keys and cannot be the check.)
   */
  function exportWithoutSecrets(): string {
    return execFileSync("pulumi", ["stack", "export", "--stack", stack.name], {
      cwd: stack.workspace.workDir,
      encoding: "utf8",
      env: {
        ...process.env,
        PULUMI_BACKEND_URL: `file://${stateDir}`,
        PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
      },
    });
  }

  /** Every file of the file:// backend (checkpoints, backups, history), as stored. */
  function stateFilesText(): string {
    const files = fs.readdirSync(stateDir, { recursive: true, encoding: "utf8" });
    return files
      .map((f) => path.join(stateDir, f))
      .filter((f) => fs.statSync(f).isFile())
      .map((f) => fs.readFileSync(f, "utf8"))
      .join("\n");
  }

  // Every test gets two fresh chains and a stack of its own, and brings them to the state it
  // starts from itself: each passes alone (`--grep`) and in any order.
  let run = 0;
  beforeEach(async () => {
    run++;
    const dir = scratchDir(`identity-${run}`);
    stateDir = path.join(dir, "state");
    [base, local] = await Promise.all([startChain("base", 84532, dir), startChain("local", 31337, dir)]);
    stack = await fixtureStack({
      fixture: "identity",
      dir,
      stackName: "identity",
      config: { signerKey: { value: SIGNER_KEY, secret: true } },
    });
  });

  afterEach(async () => {
    await Promise.all([base?.anvil.stop(), local?.anvil.stop()]);
  });

  /** Both chains registered with `https://agent.example/<base>/...` and `.../<local>/...`. */
  const registeredAt = async (baseVersion: string, localVersion = "v1") => {
    await configure([
      registration(base, `https://agent.example/${baseVersion}/registration.json`),
      registration(local, `https://agent.example/${localVersion}/registration.json`),
    ]);
    return up();
  };

  /** Registered on both chains, with the cold wallet (and its consent key) as the base agent's wallet. */
  const registeredWithColdWallet = async () => {
    await registeredAt("v2");
    await stack.setConfig("agentWalletKey", { value: WALLET_KEY, secret: true });
    await configure([
      registration(base, "https://agent.example/v2/registration.json", {
        metadata: { x402: "true", tier: "platinum" },
        agentWallet: coldWallet.address,
      }),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    await up();
    assert.equal(await agentWallet(base), coldWallet.address);
  };

  it("(a) the first up mints exactly one agent per chain; a second up sends no transaction", async () => {
    await configure([
      registration(base, "https://agent.example/v1/registration.json"),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    const outs = await up();
    for (const chain of [base, local]) {
      const out = outs[chain.name]!;
      assert.equal(await nonce(chain), 1, `one transaction (the mint) on ${chain.name}`);
      assert.equal(out.agentId, "0");
      assert.equal(out.owner, signer.address);
      assert.equal(out.agentRegistry, `${chain.network}:${chain.registry}`);
      assert.match(out.txHash, /^0x[0-9a-f]{64}$/);
      assert.equal(await tokenURI(chain, out.agentId), "https://agent.example/v1/registration.json");
      const receipt = await chain.client.getTransactionReceipt({ hash: out.txHash as Hex });
      assert.equal(receipt.status, "success");
    }

    const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
    const again = await up();
    assert.deepEqual(again, outs);
    assert.equal(await nonce(base), 1, "no transaction on the second up");
    assert.equal(await nonce(local), 1, "no transaction on the second up");
  });

  it("(b) changing the agentURI sends exactly one setAgentURI", async () => {
    await registeredAt("v1");
    const before = await base.client.getBlockNumber();
    await configure([
      registration(base, "https://agent.example/v2/registration.json"),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    const outs = await up();
    assert.equal(await nonce(base), 2, "exactly one transaction on the changed chain");
    assert.equal(await nonce(local), 1, "none on the unchanged chain");
    assert.equal(outs.base!.agentId, "0", "the same agent");
    assert.equal(await tokenURI(base, "0"), "https://agent.example/v2/registration.json");
    const events = await base.client.getContractEvents({
      address: base.registry,
      abi: ABI,
      eventName: "URIUpdated",
      fromBlock: before + 1n,
    });
    assert.equal(events.length, 1);
    assert.equal(events[0]!.args.newURI, "https://agent.example/v2/registration.json");
    assert.equal(events[0]!.args.updatedBy, signer.address);
  });

  it("writes only changed metadata keys, and records a cold payout wallet with its consent", async () => {
    await registeredAt("v2");
    const start = await nonce(base);
    await stack.setConfig("agentWalletKey", { value: WALLET_KEY, secret: true });
    await configure([
      registration(base, "https://agent.example/v2/registration.json", {
        metadata: { x402: "true", tier: "gold" },
        agentWallet: coldWallet.address,
      }),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    await up();
    assert.equal(await nonce(base), start + 3, "two setMetadata and one setAgentWallet");
    const wallet = await base.client.readContract({
      address: base.registry,
      abi: ABI,
      functionName: "getAgentWallet",
      args: [0n],
    });
    assert.equal(wallet, coldWallet.address);

    await configure([
      registration(base, "https://agent.example/v2/registration.json", {
        metadata: { x402: "true", tier: "platinum" },
        agentWallet: coldWallet.address,
      }),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    await up();
    assert.equal(await nonce(base), start + 4, "one setMetadata: only the changed key");
    const tier = await base.client.readContract({
      address: base.registry,
      abi: ABI,
      functionName: "getMetadata",
      args: [0n, "tier"],
    });
    assert.equal(Buffer.from(tier.slice(2), "hex").toString("utf8"), "platinum");
  });

  it("refresh reads the agentWallet back: a wallet cleared outside Pulumi is drift, and up restores it", async () => {
    await registeredWithColdWallet();
    const hash = await base.wallet(SIGNER_KEY).writeContract({
      address: base.registry,
      abi: parseAbi(["function unsetAgentWallet(uint256 agentId)"]),
      functionName: "unsetAgentWallet",
      args: [0n],
    });
    await base.client.waitForTransactionReceipt({ hash });
    assert.equal(await agentWallet(base), "0x0000000000000000000000000000000000000000");
    const signerNonce = await nonce(base);

    const refresh = await stack.refresh({ onOutput: log.onOutput });
    assert.equal(refresh.summary.result, "succeeded", log.text());
    assert.equal(refresh.summary.resourceChanges?.update, 1, "refresh reports the drifted wallet");
    await up();
    assert.equal(await nonce(base), signerNonce + 1, "one setAgentWallet puts the declared wallet back");
    assert.equal(await agentWallet(base), coldWallet.address);
  });

  it("an agentWallet equal to the signer replaces another wallet, with the signer's own consent", async () => {
    await registeredWithColdWallet();
    const signerNonce = await nonce(base);
    await configure([
      registration(base, "https://agent.example/v2/registration.json", {
        metadata: { x402: "true", tier: "platinum" },
        agentWallet: signer.address,
      }),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    await up();
    assert.equal(await nonce(base), signerNonce + 1, "one setAgentWallet");
    assert.equal(await agentWallet(base), signer.address);
    const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
    assert.deepEqual(Object.keys(preview.changeSummary), ["same"], log.text());
  });

  it("(f) neither the signer key nor the wallet key appears in state, the export or the logs", async () => {
    await stack.setConfig("agentWalletKey", { value: WALLET_KEY, secret: true });
    await configure([
      registration(base, "https://agent.example/v2/registration.json", {
        metadata: { x402: "true" },
        agentWallet: coldWallet.address,
      }),
      registration(local, "https://agent.example/v1/registration.json"),
    ]);
    await up();
    const exported = exportWithoutSecrets();
    const atRest = stateFilesText();
    for (const key of [SIGNER_KEY, WALLET_KEY]) {
      const hex = key.slice(2).toLowerCase();
      assert.ok(
        !exported.toLowerCase().includes(hex),
        "a private key is in plaintext in `pulumi stack export`",
      );
      assert.ok(!atRest.toLowerCase().includes(hex), "a private key is in plaintext in the state files");
      assert.ok(!log.text().toLowerCase().includes(hex), "a private key is in the engine's output");
    }
    const resources = (JSON.parse(exported) as Deployment).deployment.resources;
    const stored = resources.find((r) => r.urn.endsWith("::base"));
    for (const key of ["signerKey", "agentWalletKey"]) {
      assert.ok(stored?.inputs?.[key]?.ciphertext, `input ${key} is stored encrypted`);
      assert.ok(stored?.outputs?.[key]?.ciphertext, `output ${key} is stored encrypted`);
    }
  });

  it("(g) refresh shows a URI changed out of band, and the next up restores it", async () => {
    await registeredAt("v2");
    const hash = await base.wallet(SIGNER_KEY).writeContract({
      address: base.registry,
      abi: ABI,
      functionName: "setAgentURI",
      args: [0n, "https://hijacked.example/registration.json"],
    });
    await base.client.waitForTransactionReceipt({ hash });
    const signerNonce = await nonce(base);

    const refresh = await stack.refresh({ onOutput: log.onOutput });
    assert.equal(refresh.summary.result, "succeeded", log.text());
    assert.equal(refresh.summary.resourceChanges?.update, 1, "refresh reports the drifted registration");
    const exported = exportWithoutSecrets();
    const stored = (JSON.parse(exported) as Deployment).deployment.resources.find((r) =>
      r.urn.endsWith("::base"),
    );
    assert.equal(stored?.outputs?.agentURI, "https://hijacked.example/registration.json");
    assert.ok(
      !exported.toLowerCase().includes(SIGNER_KEY.slice(2).toLowerCase()),
      "still encrypted after read",
    );
    assert.ok(stored?.outputs?.signerKey?.ciphertext, "the refreshed signerKey output is still a secret");

    await up();
    assert.equal(await nonce(base), signerNonce + 1, "one setAgentURI puts the declared URI back");
    assert.equal(await tokenURI(base, "0"), "https://agent.example/v2/registration.json");
  });

  it("(e) destroy tombstones the URI and the NFT stays", async () => {
    await registeredAt("v2");
    const result = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(result.summary.result, "succeeded", log.text());
    for (const chain of [base, local]) {
      assert.equal(await ownerOf(chain, "0"), signer.address, `the agent NFT still exists on ${chain.name}`);
      const doc = parseDataUriJson(await tokenURI(chain, "0"));
      assert.ok(doc, "the URI is an on-chain data: document");
      assert.equal(doc.active, false);
      assert.equal(doc.type, "https://eips.ethereum.org/EIPS/eip-8004#registration-v1");
      assert.deepEqual(doc.services, []);
      assert.deepEqual(doc.registrations, [
        { agentId: 0, agentRegistry: `${chain.network}:${chain.registry}` },
      ]);
    }
  });

  it("(c) adopts the registration a crash left behind instead of minting again", async () => {
    const agentURI = "https://agent.example/crashed/registration.json";
    const lost = await mintDirectly(base, SIGNER_KEY, agentURI);
    const signerNonce = await nonce(base);
    await configure([registration(base, agentURI)]);
    const outs = await up();
    assert.equal(outs.base!.agentId, lost.toString(), "the lost registration was adopted");
    assert.match(outs.base!.txHash, /^0x[0-9a-f]{64}$/, "its mint transaction was found");
    assert.equal(await nonce(base), signerNonce, "the up sent no transaction");
    const destroyed = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(destroyed.summary.result, "succeeded", log.text());
  });

  it("an agentId above 2^53 stays exact: outputs, state and the tombstone", async () => {
    // A fresh registry whose id counter is moved past 2^53: after one mint, the counter is the
    // only plain storage slot holding 1 (names are long strings, mappings hold 0).
    const { abi, bytecode } = identityRegistryArtifact();
    const hash = await local.wallet(ANVIL_KEYS[0]).deployContract({ abi, bytecode });
    const registry = getAddress((await local.client.waitForTransactionReceipt({ hash })).contractAddress!);
    const big: TestChain = { ...local, registry };
    await mintDirectly(big, STRANGER_KEY, "https://stranger.example/r.json");
    let counterSlot: Hex | undefined;
    for (let slot = 0; slot < 32 && !counterSlot; slot++) {
      const at = `0x${slot.toString(16).padStart(64, "0")}` as Hex;
      if (BigInt((await local.client.getStorageAt({ address: registry, slot: at })) ?? "0x0") === 1n)
        counterSlot = at;
    }
    assert.ok(counterSlot, "found the registry's id counter");
    const agentId = 2n ** 53n + 1n; // Number() would turn it into ...992, another agent
    await local.client.request({
      method: "anvil_setStorageAt" as never,
      params: [registry, counterSlot, `0x${agentId.toString(16).padStart(64, "0")}`] as never,
    });

    await configure([registration(big, "https://agent.example/big/registration.json")]);
    const outs = await up();
    assert.equal(outs.local?.agentId, agentId.toString());
    assert.equal(await ownerOf(big, agentId.toString()), signer.address);
    assert.equal(await tokenURI(big, agentId.toString()), "https://agent.example/big/registration.json");
    const again = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
    assert.deepEqual(Object.keys(again.changeSummary), ["same"], "refresh and diff keep the exact id");

    const destroyed = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(destroyed.summary.result, "succeeded", log.text());
    const uri = await tokenURI(big, agentId.toString());
    const json = Buffer.from(uri.slice(uri.indexOf(",") + 1), "base64").toString("utf8");
    assert.ok(
      json.includes(
        `"registrations":[{"agentId":${agentId},"agentRegistry":"${local.network}:${registry}"}]`,
      ),
      json,
    );
    assert.match(JSON.parse(json).image, /^data:image\/svg\+xml;base64,/, "the tombstone carries an image");
  });

  it("(d) adopts an explicit agentId the signer owns, and refuses one it does not", async () => {
    const mine = (await mintDirectly(local, SIGNER_KEY, "https://old.example/registration.json")).toString();
    const signerNonce = await nonce(local);
    await configure([
      registration(local, "https://agent.example/v1/registration.json", { adoptAgentId: mine }),
    ]);
    const outs = await up();
    assert.equal(outs.local!.agentId, mine);
    assert.equal(await nonce(local), signerNonce + 1, "one setAgentURI, no mint");
    assert.equal(await tokenURI(local, mine), "https://agent.example/v1/registration.json");

    const theirs = (await mintDirectly(base, STRANGER_KEY, "https://stranger.example/r.json")).toString();
    const stranger = privateKeyToAccount(STRANGER_KEY).address;
    await configure([
      registration(local, "https://agent.example/v1/registration.json", { adoptAgentId: mine }),
      registration(base, "https://agent.example/v1/registration.json", { adoptAgentId: theirs }),
    ]);
    const failed = outputCollector();
    await assert.rejects(stack.up({ onOutput: failed.onOutput }));
    assert.match(
      failed.text(),
      new RegExp(
        `agentId ${theirs} on ${base.network} is owned by ${stranger}, not the signer ${signer.address}`,
      ),
    );
    assert.equal(await ownerOf(base, theirs), stranger, "nothing changed hands");

    await configure([
      registration(local, "https://agent.example/v1/registration.json", { adoptAgentId: mine }),
    ]);
    const destroyed = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(destroyed.summary.result, "succeeded", log.text());
  });
});
