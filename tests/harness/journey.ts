/**
 * The two-operator journey on the real node, as steps shared by its integration test
 * (tests/integration/realCluster/journey.test.ts) and `npm run demo` (scripts/demo.ts):
 *
 * Alice's stack sells the test model server per request, runs its own facilitator and registers
 * an ERC-8004 agent on the test IdentityRegistry on anvil; Bob's stack, in another namespace of
 * the same cluster, buys from Alice by that agent id (never by URL). An agent pod calls Bob's
 * LiteLLM with `paid/<model>`: LiteLLM → Bob's buyer → Alice's gateway (cross-namespace DNS
 * stands in for the tunnel) → the model server, settled on anvil by Alice's facilitator.
 *
 * Each step returns what it saw; the test asserts on it, the demo prints it.
 */
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { type Address, type Hex, parseAbiItem, zeroAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "./anvil";
import { deployIdentityRegistry } from "./identityRegistry";
import type { ImageName, LocalImage } from "./images";
import { type PaymentChain, startPaymentChain } from "./paymentChain";
import { waitFor } from "./processes";
import { programStack } from "./project";
import { sampleValue } from "./promql";
import { outputCollector } from "./pulumi";
import { finishedPodLog, type RealCluster } from "./realCluster";

/** What the journey runs on the node: the stack's images, the upstream and the agent pod's. */
export const JOURNEY_IMAGES: ImageName[] = ["runtime", "litellm", "modelServer", "distroless"];
/** The `distroless` test image: Node.js for pods that act as clients (the agent). */
const CLIENT_IMAGE = "gcr.io/distroless/nodejs22-debian12:nonroot";
export const MODEL = "test-model";
export const OFFER = "llama";
export const PURCHASE = "alice-llama";
/** 0.001 USDC per request, in the token's 6 decimals. */
export const PRICE_ATOMIC = 1000n;
/** Bob may spend two calls' worth: the third is refused before any payment. */
export const MAX_TOTAL = "0.002";

/** anvil development keys (test values, never real wallets). */
const FACILITATOR_KEY: Hex = ANVIL_KEYS[1];
const SELLER_KEY: Hex = ANVIL_KEYS[2];
const BUYER_KEY: Hex = ANVIL_KEYS[3];

/** Progress of the journey: the demo prints it with timings; the test keeps it for failures. */
export interface JourneyReporter {
  step<T>(title: string, run: () => Promise<T>): Promise<T>;
  info(line: string): void;
}

/** Writes `▶ step`, then `✓ step (12.3 s)` or `✗ step`, and indented info lines. */
export function lineReporter(write: (line: string) => void): JourneyReporter {
  const t0 = Date.now();
  const clock = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  return {
    async step(title, run) {
      write(`${clock()} ▶ ${title}`);
      const started = Date.now();
      try {
        const result = await run();
        write(`${clock()} ✓ ${title} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        return result;
      } catch (err) {
        write(`${clock()} ✗ ${title}`);
        throw err;
      }
    },
    info(line) {
      write(`          ${line}`);
    },
  };
}

/** One Transfer of the payment token into Alice's payTo: a settled payment, as the chain saw it. */
export interface Settlement {
  txHash: Hex;
  from: Address;
  amount: bigint;
}

/** What the agent pod saw. */
export interface AgentCalls {
  /** Alice's offer called without payment: status and the decoded PAYMENT-REQUIRED header. */
  unpaid: { status: number; paymentRequired?: { accepts?: { amount?: string; payTo?: string }[] } };
  /** `paid/<model>` through Bob's LiteLLM, plain. */
  plain: { status: number; content?: string; body: string };
  /** The same, streamed: SSE events and how many network reads delivered them. */
  streamed: { status: number; events: number; reads: number; content: string; done: boolean; spanMs: number };
  /** A call past Bob's maxTotal. */
  overBudget: { status: number; body: string };
}

export interface SellerRecords {
  /** x402_payments_settled_total and x402_received_atomic_total of Alice's gateway for the offer. */
  gatewaySettled: number;
  gatewayReceived: bigint;
  /** obol_facilitator_requests_total{op=settle,outcome=settled} and the settled amount of Alice's facilitator. */
  facilitatorSettled: number;
  facilitatorAmount: bigint;
}

export interface BuyerRecords {
  status: { endpoint?: string; requests?: number; spentTotal?: string };
  /** Payments Bob's buyer ledger records as settled, with their reserved amounts. */
  ledger: { tx?: string; amount: bigint }[];
}

export interface JourneyOptions {
  cluster: RealCluster;
  images: Record<ImageName, LocalImage>;
  /** Scratch space: stack projects and state, anvil's log. */
  dir: string;
  /** Namespace suffix, unique per run (both stacks and the upstream get their own). */
  suffix: string;
  report: JourneyReporter;
}

/** The two stacks, the chain and the upstream of one journey, and its steps. */
export class Journey {
  readonly ns: { alice: string; bob: string; llm: string };
  readonly seller = privateKeyToAccount(SELLER_KEY).address;
  readonly buyer = privateKeyToAccount(BUYER_KEY).address;
  readonly log = outputCollector();
  chain!: PaymentChain;
  registry!: Address;
  alice!: Stack;
  bob!: Stack;
  /** The agent Bob buys from, once `buyerUp` named it. */
  private agentRef?: string;
  /** The cluster both stacks run on: a fresh one after `loseCluster`. */
  cluster: RealCluster;
  /** Bob's budget, as his stack's config says. */
  private maxTotal = MAX_TOTAL;

  constructor(readonly opts: JourneyOptions) {
    this.ns = { alice: `alice-${opts.suffix}`, bob: `bob-${opts.suffix}`, llm: `llm-${opts.suffix}` };
    this.cluster = opts.cluster;
  }

  get report(): JourneyReporter {
    return this.opts.report;
  }

  /** anvil on the node's address (pods reach it), the IdentityRegistry, Bob's funds, the upstream. */
  async prepare(): Promise<void> {
    await this.report.step("anvil with the test USDC and the ERC-8004 IdentityRegistry", async () => {
      this.chain = await startPaymentChain(path.join(this.opts.dir, "logs"), this.cluster.nodeIp);
      this.registry = await deployIdentityRegistry(this.chain.anvil.rpcUrl);
      await this.chain.mint(this.buyer, 10_000_000n);
    });
    this.report.info(`anvil ${this.chain.anvil.rpcUrl} (${this.chain.network}), registry ${this.registry}`);
    await this.report.step(`the upstream model server in namespace ${this.ns.llm}`, () =>
      applyModelServer(this.cluster, this.ns.llm, this.opts.images.modelServer.tag),
    );
    this.alice = await programStack({
      dir: path.join(this.opts.dir, "alice"),
      stackName: "alice",
      fromDevStack: false,
      config: this.aliceConfig(),
    });
  }

  /** `pulumi up` of Alice's stack: her offer Ready and her agent minted; returns the agent id. */
  async sellerUp(): Promise<{
    agentId: string;
    agentRef: string;
    offerUrl: string;
    registrationUrl: string;
  }> {
    await this.report.step(`pulumi up: Alice's stack (namespace ${this.ns.alice})`, () =>
      this.up(this.alice),
    );
    await this.rollout(this.ns.alice);
    const outputs = await this.alice.outputs();
    const agentId = (outputs.agentIds?.value as Record<string, string> | undefined)?.[this.chain.network];
    const offerUrl = (outputs.offerEndpoints?.value as Record<string, string> | undefined)?.[OFFER];
    if (!agentId || !offerUrl)
      throw new Error(`Alice's stack has no agent id or offer endpoint: ${JSON.stringify(outputs)}`);
    const origin = `http://x402-gateway.${this.ns.alice}.svc:8080`;
    await this.report.step("Alice's offer Ready", () =>
      this.waitCondition(this.ns.alice, "serviceoffer", OFFER),
    );
    return {
      agentId,
      agentRef: `${this.chain.network}:${this.registry}#${agentId}`,
      offerUrl,
      registrationUrl: `${origin}/.well-known/agent-registration.json`,
    };
  }

  /** `pulumi up` of Bob's stack buying from `agentRef`; waits until the controller resolved it. */
  async buyerUp(agentRef: string): Promise<BuyerRecords["status"]> {
    this.agentRef = agentRef;
    this.bob = await programStack({
      dir: path.join(this.opts.dir, "bob"),
      stackName: "bob",
      fromDevStack: false,
      config: this.bobConfig(agentRef),
    });
    await this.report.step(`pulumi up: Bob's stack (namespace ${this.ns.bob})`, () => this.up(this.bob));
    await this.rollout(this.ns.bob);
    await this.report.step(`Bob's controller resolves ${agentRef} to Alice's offer`, () =>
      this.waitCondition(this.ns.bob, "purchaserequest", PURCHASE),
    );
    return (await this.buyerRecords()).status;
  }

  /** The agent pod: Alice's offer unpaid, then `paid/<model>` plain, streamed, and past the budget. */
  async agentCalls(): Promise<AgentCalls> {
    const masterKey = await this.masterKey();
    const out = await runInPod(this.cluster, this.ns.bob, `agent-${Date.now()}`, AGENT_SCRIPT, {
      OFFER_URL: `http://x402-gateway.${this.ns.alice}.svc:8080/services/${OFFER}/v1/chat/completions`,
      LITELLM: `http://litellm.${this.ns.bob}.svc:4000`,
      MASTER_KEY: masterKey,
      MODEL,
    });
    const unpaid = out.unpaid as { status: number; header?: string };
    return {
      unpaid: {
        status: unpaid.status,
        ...(unpaid.header
          ? { paymentRequired: JSON.parse(Buffer.from(unpaid.header, "base64").toString()) }
          : {}),
      },
      plain: out.plain as AgentCalls["plain"],
      streamed: out.streamed as AgentCalls["streamed"],
      overBudget: out.overBudget as AgentCalls["overBudget"],
    };
  }

  /**
   * Step 6, the loss: `recreate` deletes the whole cluster (every pod and container, etcd's data,
   * the volumes with Bob's ledger) and starts a fresh one. anvil keeps running and both stacks
   * keep their Pulumi state. The upstream model server is not either stack's (it stands in for a
   * user's own Ollama), so it comes back with the cluster. The fresh cluster has fresh
   * credentials: each stack's `kubeconfig` config names them (same API server URL, so the same
   * cluster identity for the Kubernetes provider); nothing else is touched.
   */
  async loseCluster(recreate: () => Promise<RealCluster>): Promise<void> {
    await this.report.step(
      "the whole cluster is lost; a fresh one starts (anvil and Pulumi state stay)",
      async () => {
        this.cluster = await recreate();
      },
    );
    await this.report.step(`the upstream model server again, in namespace ${this.ns.llm}`, () =>
      applyModelServer(this.cluster, this.ns.llm, this.opts.images.modelServer.tag),
    );
    for (const stack of [this.alice, this.bob])
      await stack?.setConfig("obol-stack:kubeconfig", { value: this.cluster.kubeconfig, secret: true });
  }

  /**
   * Step 6, the resume: `pulumi up` of Alice's stack, then Bob's, and nothing else; returns when
   * Alice's offer and Bob's PurchaseRequest are Ready again.
   */
  async resume(): Promise<{ agentId: string; status: BuyerRecords["status"] }> {
    const agentRef = this.agentRef;
    if (!agentRef) throw new Error("resume() needs Bob's stack up first (buyerUp)");
    const agent = await this.sellerUp();
    await this.report.step(`pulumi up: Bob's stack (namespace ${this.ns.bob})`, () => this.up(this.bob));
    await this.rollout(this.ns.bob);
    await this.report.step(`Bob's controller resolves ${agentRef} to Alice's offer`, () =>
      this.waitCondition(this.ns.bob, "purchaserequest", PURCHASE),
    );
    return { agentId: agent.agentId, status: (await this.buyerRecords()).status };
  }

  /** Bob's PurchaseRequest status once its spentTotal is `spentTotal` (bounded wait). */
  async buyerStatus(spentTotal: string): Promise<BuyerRecords["status"]> {
    let status: BuyerRecords["status"] = {};
    await waitFor(
      `Bob's PurchaseRequest to count ${spentTotal} spent`,
      async () => {
        status = (await this.buyerRecords()).status;
        return status.spentTotal === spentTotal;
      },
      { timeoutMs: 60_000, intervalMs: 1000, describe: () => JSON.stringify(status) },
    ).catch(() => undefined); // the caller compares and reports what it said
    return status;
  }

  /** `pulumi up` of Bob's stack with a new maxTotal; returns once his buyer sees it. */
  async setBudget(maxTotal: string): Promise<void> {
    if (!this.agentRef) throw new Error("setBudget() needs Bob's stack up first (buyerUp)");
    this.maxTotal = maxTotal;
    await this.bob.setConfig("obol-stack:purchases", this.bobConfig(this.agentRef)["obol-stack:purchases"]);
    await this.report.step(`pulumi up: Bob's stack with maxTotal ${maxTotal}`, () => this.up(this.bob));
    await this.report.step(`Bob's PurchaseRequest says maxTotal ${maxTotal}`, () =>
      waitFor(
        "the new budget",
        async () => {
          const pr = await this.kubectlJson<{
            metadata: { generation?: number };
            spec: { budget?: { maxTotal?: string } };
            status?: { observedGeneration?: number };
          }>(["-n", this.ns.bob, "get", "purchaserequest", PURCHASE]);
          return (
            pr.spec.budget?.maxTotal === maxTotal &&
            (pr.status?.observedGeneration === undefined ||
              pr.status.observedGeneration === pr.metadata.generation)
          );
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      ),
    );
  }

  /** The agent pod's plain `paid/<model>` calls through Bob's LiteLLM, one per message, in order. */
  async agentChats(messages: string[]): Promise<AgentCalls["plain"][]> {
    const out = await runInPod(this.cluster, this.ns.bob, `agent-${Date.now()}`, CHATS_SCRIPT, {
      LITELLM: `http://litellm.${this.ns.bob}.svc:4000`,
      MASTER_KEY: await this.masterKey(),
      MODEL,
      MESSAGES: JSON.stringify(messages),
    });
    return out.chats as AgentCalls["plain"][];
  }

  /** ERC-721 mints of the IdentityRegistry to Alice's identity signer: one per agent she registered. */
  async mints(): Promise<bigint[]> {
    const logs = await this.chain.client.getLogs({
      address: this.registry,
      event: parseAbiItem(
        "event Transfer(address indexed from, address indexed to, uint256 indexed tokenId)",
      ),
      args: { from: zeroAddress, to: this.seller },
      fromBlock: 0n,
    });
    return logs.map((l) => l.args.tokenId!);
  }

  /** `pulumi preview` of a stack: its change summary (only `same` when nothing would change). */
  async preview(who: "alice" | "bob"): Promise<Record<string, number>> {
    const stack = who === "alice" ? this.alice : this.bob;
    const result = await stack.preview({ onOutput: this.log.onOutput });
    return result.changeSummary as Record<string, number>;
  }

  /** Every Transfer of the payment token into Alice's payTo since `fromBlock`. */
  async settlements(fromBlock: bigint): Promise<Settlement[]> {
    // anvil refuses a range that starts past its head: no block since, no Transfer since.
    if (fromBlock > (await this.chain.client.getBlockNumber())) return [];
    const logs = await this.chain.client.getLogs({
      address: this.chain.asset.address,
      event: parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)"),
      args: { to: this.seller },
      fromBlock,
    });
    return logs.map((l) => ({ txHash: l.transactionHash, from: l.args.from!, amount: l.args.value! }));
  }

  async balances(): Promise<{ seller: bigint; buyer: bigint }> {
    return { seller: await this.chain.balanceOf(this.seller), buyer: await this.chain.balanceOf(this.buyer) };
  }

  /** What Alice's gateway and facilitator counted (their /metrics, read inside their pods). */
  async sellerRecords(): Promise<SellerRecords> {
    const gateway = await this.metrics(this.ns.alice, "x402-gateway", 8081);
    const facilitator = await this.metrics(this.ns.alice, "x402-facilitator", 8090);
    const offer = { offer: OFFER, network: this.chain.network };
    return {
      gatewaySettled: sampleValue(gateway, "x402_payments_settled_total", offer) || 0,
      gatewayReceived: BigInt(sampleValue(gateway, "x402_received_atomic_total", offer) || 0),
      facilitatorSettled:
        sampleValue(facilitator, "obol_facilitator_requests_total", { op: "settle", outcome: "settled" }) ||
        0,
      facilitatorAmount: BigInt(sampleValue(facilitator, "obol_facilitator_settled_atomic_total", {}) || 0),
    };
  }

  /**
   * Bob's buyer pod (another operator's workload in the same cluster) asks Alice's facilitator,
   * through its Service, to settle: what it answers (status and body).
   */
  async settleFromBobsPod(): Promise<{ status: number; body: string }> {
    const url = `http://x402-facilitator.${this.ns.alice}.svc:8090/settle`;
    const body = JSON.stringify({ paymentPayload: {}, paymentRequirements: {} });
    const out = await this.cluster.kubectl([
      "-n",
      this.ns.bob,
      "exec",
      "deploy/x402-buyer",
      "--",
      "/nodejs/bin/node",
      "-e",
      `fetch(${JSON.stringify(url)}, { method: "POST", headers: { "content-type": "application/json" }, body: ${JSON.stringify(body)} })` +
        ".then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))",
    ]);
    return JSON.parse(out) as { status: number; body: string };
  }

  /**
   * Both sides' records once they count `payments` (the status and the metrics follow the
   * responses, so this waits, bounded); what they say is for the caller to compare.
   */
  async records(payments: number): Promise<{ seller: SellerRecords; buyer: BuyerRecords }> {
    let seller = await this.sellerRecords();
    let buyer = await this.buyerRecords();
    await waitFor(
      `Alice's and Bob's records to count ${payments} payments`,
      async () => {
        [seller, buyer] = [await this.sellerRecords(), await this.buyerRecords()];
        return (
          seller.gatewaySettled >= payments &&
          seller.facilitatorSettled >= payments &&
          (buyer.status.requests ?? 0) >= payments
        );
      },
      {
        timeoutMs: 30_000,
        intervalMs: 1000,
        describe: () =>
          JSON.stringify({ seller, buyer }, (_, v) => (typeof v === "bigint" ? v.toString() : v)),
      },
    ).catch(() => undefined); // the caller compares and reports what they said
    return { seller, buyer };
  }

  /** Bob's PurchaseRequest status and the payments his buyer's ledger (on its volume) settled. */
  async buyerRecords(): Promise<BuyerRecords> {
    const pr = await this.kubectlJson<{ status?: BuyerRecords["status"] }>([
      "-n",
      this.ns.bob,
      "get",
      "purchaserequest",
      PURCHASE,
    ]);
    const text = await this.cluster.kubectl([
      "-n",
      this.ns.bob,
      "exec",
      "deploy/x402-buyer",
      "--",
      "/nodejs/bin/node",
      "-e",
      "const f='/var/lib/obol-buyer/ledger.jsonl';const fs=require('fs');process.stdout.write(fs.existsSync(f)?fs.readFileSync(f,'utf8'):'')",
    ]);
    const reserved = new Map<string, bigint>();
    const ledger: BuyerRecords["ledger"] = [];
    for (const line of text.split("\n").filter((l) => l.trim())) {
      const e = JSON.parse(line) as { kind: string; id: string; amount?: string; tx?: string };
      if (e.kind === "reserved") reserved.set(e.id, BigInt(e.amount ?? "0"));
      if (e.kind === "settled")
        ledger.push({ ...(e.tx ? { tx: e.tx } : {}), amount: reserved.get(e.id) ?? 0n });
      if (e.kind === "recovered")
        ledger.push({ ...(e.tx ? { tx: e.tx } : {}), amount: BigInt(e.amount ?? "0") });
    }
    return { status: pr.status ?? {}, ledger };
  }

  /** Destroys both stacks (Bob's first), the upstream's namespace, and stops anvil. */
  async teardown(): Promise<void> {
    for (const [who, stack] of [
      ["Bob", this.bob],
      ["Alice", this.alice],
    ] as const) {
      if (!stack) continue;
      await this.report.step(`pulumi destroy: ${who}'s stack`, async () => {
        const result = await stack.destroy({ onOutput: this.log.onOutput });
        if (result.summary.result !== "succeeded") throw new Error(`destroy failed:\n${this.log.text()}`);
      });
    }
    await this.cluster.kubectl(["delete", "namespace", this.ns.llm, "--wait=false", "--ignore-not-found"]);
    await this.chain?.stop();
  }

  // ---- the two stacks' config ---------------------------------------------------------------

  private common(namespace: string) {
    return {
      "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
      "obol-stack:kubeconfig": { value: this.cluster.kubeconfig, secret: true },
      "obol-stack:namespace": { value: namespace },
      "obol-stack:images": {
        value: JSON.stringify({
          runtime: this.opts.images.runtime.tag,
          litellm: this.opts.images.litellm.tag,
        }),
      },
      // Nothing leaves the machine: no tunnel; each stack settles through its own facilitator on anvil.
      "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
      "obol-stack:facilitator": { value: JSON.stringify({ mode: "self", rpcUrl: this.chain.anvil.rpcUrl }) },
      "obol-stack:facilitatorSignerKey": { value: FACILITATOR_KEY, secret: true },
    };
  }

  private aliceConfig() {
    const network = this.chain.network;
    return {
      ...this.common(this.ns.alice),
      // Her stable public origin, as the on-chain agentURI names it: cluster DNS stands in for a
      // named tunnel's hostname.
      "obol-stack:publicBaseUrl": { value: `http://x402-gateway.${this.ns.alice}.svc:8080` },
      "obol-stack:identity": {
        value: JSON.stringify({
          register: true,
          name: "Alice",
          description: "Sells the test model per request",
          rpcUrls: { [network]: this.chain.anvil.rpcUrl },
          registries: { [network]: this.registry },
        }),
      },
      "obol-stack:identitySignerKey": { value: SELLER_KEY, secret: true },
      "obol-stack:offers": {
        value: JSON.stringify([
          {
            name: OFFER,
            type: "inference",
            description: "The test model server, sold per request.",
            model: { name: MODEL },
            upstream: { service: "model-server", namespace: this.ns.llm, port: 8080, healthPath: "/health" },
            payment: { network, payTo: this.seller, asset: this.chain.asset, price: { perRequest: "0.001" } },
          },
        ]),
      },
    };
  }

  private bobConfig(agentRef: string) {
    return {
      ...this.common(this.ns.bob),
      "obol-stack:offers": { value: "[]" },
      "obol-stack:buyerSignerKey": { value: BUYER_KEY, secret: true },
      "obol-stack:purchases": {
        value: JSON.stringify([
          {
            name: PURCHASE,
            agent: agentRef,
            model: MODEL,
            payment: {
              network: this.chain.network,
              asset: this.chain.asset.address,
              decimals: 6,
              maxPrice: "0.001",
              rpcUrl: this.chain.anvil.rpcUrl,
            },
            budget: { maxPerRequest: "0.001", maxTotal: this.maxTotal },
          },
        ]),
      },
    };
  }

  // ---- cluster helpers ------------------------------------------------------------------------

  /** LiteLLM's master key, from the Secret Bob's stack made (the agent's credential). */
  private async masterKey(): Promise<string> {
    const secret = await this.kubectlJson<{ data: Record<string, string> }>([
      "-n",
      this.ns.bob,
      "get",
      "secret",
      "litellm-secrets",
    ]);
    return Buffer.from(secret.data.LITELLM_MASTER_KEY ?? "", "base64").toString();
  }

  private async up(stack: Stack): Promise<void> {
    const result = await stack.up({ onOutput: this.log.onOutput });
    if (result.summary.result !== "succeeded") throw new Error(`pulumi up failed:\n${this.log.text()}`);
  }

  private async rollout(namespace: string): Promise<void> {
    await this.report.step(`every Deployment in ${namespace} rolled out`, async () => {
      const { items } = await this.kubectlJson<{ items: { metadata: { name: string } }[] }>([
        "-n",
        namespace,
        "get",
        "deployments",
      ]);
      for (const d of items)
        await this.cluster.kubectl([
          "-n",
          namespace,
          "rollout",
          "status",
          `deployment/${d.metadata.name}`,
          "--timeout=300s",
        ]);
    });
  }

  private async waitCondition(namespace: string, kind: string, name: string): Promise<void> {
    let last = "";
    await waitFor(
      `${kind} ${namespace}/${name} Ready`,
      async () => {
        const obj = await this.kubectlJson<{
          status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
        }>(["-n", namespace, "get", kind, name]);
        const ready = obj.status?.conditions?.find((c) => c.type === "Ready");
        last = JSON.stringify(ready ?? obj.status ?? {});
        return ready?.status === "True";
      },
      { timeoutMs: 180_000, intervalMs: 1000, describe: () => `(last: ${last})` },
    );
  }

  private async metrics(namespace: string, deployment: string, port: number): Promise<string> {
    return await this.cluster.kubectl([
      "-n",
      namespace,
      "exec",
      `deploy/${deployment}`,
      "--",
      "/nodejs/bin/node",
      "-e",
      `fetch("http://127.0.0.1:${port}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t))`,
    ]);
  }

  private async kubectlJson<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.cluster.kubectl([...args, "-o", "json"])) as T;
  }
}

/**
 * The upstream every real-cluster stack test sells: the test model server (answers any model,
 * lists `MODEL`) as Deployment and Service `model-server` in a namespace of its own, like a
 * user's Ollama; returns once it is Ready.
 */
export async function applyModelServer(
  cluster: RealCluster,
  namespace: string,
  image: string,
): Promise<void> {
  const llm = namespace;
  await cluster.kubectl(
    ["apply", "-f", "-"],
    [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: llm } },
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "model-server", namespace: llm },
        spec: {
          selector: { matchLabels: { app: "model-server" } },
          template: {
            metadata: { labels: { app: "model-server" } },
            spec: {
              automountServiceAccountToken: false,
              securityContext: { runAsNonRoot: true, runAsUser: 65532 },
              containers: [
                {
                  name: "model-server",
                  image: image,
                  env: [{ name: "MODELS", value: MODEL }],
                  ports: [{ name: "http", containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: "/health", port: "http" }, periodSeconds: 1 },
                  securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "model-server", namespace: llm },
        spec: { selector: { app: "model-server" }, ports: [{ port: 8080, targetPort: "http" }] },
      },
    ]
      .map((o) => JSON.stringify(o))
      .join("\n"),
  );
  await cluster.kubectl(["-n", llm, "rollout", "status", "deployment/model-server", "--timeout=300s"]);
}

/**
 * Runs `script` with Node.js in a run-once pod of `namespace` (which may enforce Pod Security
 * "restricted") and returns the merged JSON objects it printed, one per line.
 */
export async function runInPod(
  cluster: RealCluster,
  namespace: string,
  name: string,
  script: string,
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  await cluster.kubectl(
    ["apply", "-f", "-"],
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace },
      spec: {
        restartPolicy: "Never",
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "client",
            image: CLIENT_IMAGE,
            imagePullPolicy: "Never",
            args: ["-e", script],
            env: Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
            securityContext: {
              readOnlyRootFilesystem: true,
              allowPrivilegeEscalation: false,
              capabilities: { drop: ["ALL"] },
            },
          },
        ],
      },
    }),
  );
  const out = await finishedPodLog(cluster, namespace, name);
  await cluster.kubectl(["-n", namespace, "delete", "pod", name, "--wait=false"]);
  return Object.assign(
    {},
    ...out
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l)),
  );
}

/** An agent making plain chat calls in order, one per message of MESSAGES (a JSON array). */
const CHATS_SCRIPT = `
const env = process.env;
(async () => {
  const chats = [];
  for (const message of JSON.parse(env.MESSAGES)) {
    const res = await fetch(env.LITELLM + "/v1/chat/completions", { method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer " + env.MASTER_KEY },
      body: JSON.stringify({ model: "paid/" + env.MODEL, messages: [{ role: "user", content: message }] }) });
    const body = await res.text();
    let content;
    try { content = JSON.parse(body).choices?.[0]?.message?.content; } catch {}
    chats.push({ status: res.status, content, body: body.slice(0, 2000) });
  }
  console.log(JSON.stringify({ chats }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** The agent: plain fetch calls, as any OpenAI client would make them. */
const AGENT_SCRIPT = `
const env = process.env;
const out = (k, v) => console.log(JSON.stringify({ [k]: v }));
// Long enough (a chunk a word, 15 ms apart) that a buffered stream would show as one read.
const STREAMED = "stream " + Array.from({ length: 40 }, (_, i) => "word" + i).join(" ");
const chat = (body) => fetch(env.LITELLM + "/v1/chat/completions", { method: "POST",
  headers: { "content-type": "application/json", authorization: "Bearer " + env.MASTER_KEY },
  body: JSON.stringify({ model: "paid/" + env.MODEL, ...body }) });
(async () => {
  const unpaid = await fetch(env.OFFER_URL, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: env.MODEL, messages: [{ role: "user", content: "hi" }] }) });
  out("unpaid", { status: unpaid.status, header: unpaid.headers.get("payment-required") ?? undefined });

  const plain = await chat({ messages: [{ role: "user", content: "hello from Bob's agent" }] });
  const plainBody = await plain.text();
  let content;
  try { content = JSON.parse(plainBody).choices?.[0]?.message?.content; } catch {}
  out("plain", { status: plain.status, content, body: plainBody.slice(0, 2000) });

  const t0 = Date.now();
  const streamed = await chat({ stream: true, messages: [{ role: "user", content: STREAMED }] });
  const reader = streamed.body.getReader();
  const decoder = new TextDecoder();
  let text = "", reads = 0, first = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!first) first = Date.now();
    reads++;
    text += decoder.decode(value, { stream: true });
  }
  const events = text.split("\\n").filter((l) => l.startsWith("data: "));
  const deltas = events.filter((l) => l !== "data: [DONE]").map((l) => {
    try { return JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? ""; } catch { return ""; }
  });
  out("streamed", { status: streamed.status, events: events.length, reads, content: deltas.join(""),
    done: events.includes("data: [DONE]"), spanMs: Date.now() - (first || t0) });

  const over = await chat({ messages: [{ role: "user", content: "one call too many" }] });
  out("overBudget", { status: over.status, body: (await over.text()).slice(0, 2000) });
})().catch((e) => { console.error(e); process.exit(1); });
`;
