/**
 * `npm run demo [-- --keep]`: the release journey on this machine, step by step (the same steps
 * as tests/integration/realCluster/journey.test.ts, from tests/harness/journey.ts).
 *
 * It starts what it needs and nothing that leaves the machine: a Docker engine for the images
 * (only if none runs), the real one-node cluster of the test harness (root, its own address,
 * bridge and firewall guard), and anvil bound to the node's address. Then Alice's stack sells and
 * registers an ERC-8004 agent, Bob's stack buys from her by agent id, and an agent pod pays
 * through Bob's LiteLLM. At the end (or on Ctrl-C) everything it started is removed; with
 * `--keep` it stays up until Ctrl-C.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { formatUnits } from "viem";
import { RUN_DIR, sharedRealCluster, stopSharedClusters } from "../tests/harness/env";
import { ensureImages, type ImageName, type LocalImage } from "../tests/harness/images";
import { JOURNEY_IMAGES, Journey, lineReporter, MAX_TOTAL, MODEL, PURCHASE } from "../tests/harness/journey";

const USAGE = `usage: npm run demo [-- --keep]

Runs the two-operator journey on this machine: a real one-node Kubernetes cluster, anvil, two
stacks (Alice sells and registers an ERC-8004 agent; Bob buys from her by agent id), paid calls
through Bob's LiteLLM, then removes everything it started.

  --keep   leave everything running after the journey, until Ctrl-C
  --help   this text`;

/** What the demo needs that it cannot start itself, each with the fix. */
function missingPrerequisites(): string[] {
  const problems: string[] = [];
  if (process.getuid?.() !== 0)
    problems.push(
      "not root: the real node adds a network link, a bridge, iptables chains and mounts (sudo npm run demo)",
    );
  const onPath = (bin: string) =>
    (process.env.PATH ?? "").split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, bin)));
  if (!onPath("kubelet") || !onPath("pulumi"))
    problems.push("the pinned toolchain is not built: run `npm run tools` once (see the README's set-up)");
  if (!onPath("docker") || !onPath("dockerd"))
    problems.push("no Docker engine to build the images with: apt-get install -y docker.io");
  if (!fs.existsSync(path.join(__dirname, "../node_modules/.bin/anvil")))
    problems.push("dependencies are not installed: npm ci --ignore-scripts");
  return problems;
}

const usdc = (atomic: bigint) => `${formatUnits(atomic, 6)} USDC`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const unknown = args.filter((a) => a !== "--keep");
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown.join(" ")}\n\n${USAGE}`);
  const keep = args.includes("--keep");
  const problems = missingPrerequisites();
  if (problems.length > 0) throw new Error(`the demo cannot run here:\n  ${problems.join("\n  ")}`);

  const report = lineReporter((line) => console.log(line));
  let journey: Journey | undefined;
  let stopping = false;
  const teardown = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nRemoving everything the demo started");
    await journey?.teardown().catch((err: Error) => console.error(`  ${err.message}`));
    await report.step("stop the node: processes, pods, links, iptables chains, mounts, its data", () =>
      stopSharedClusters({ destroy: true }),
    );
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
  };
  // Ctrl-C while kept up ends the wait; during the journey it removes what was started so far.
  let waiting: (() => void) | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      if (waiting) waiting();
      else void teardown().finally(() => process.exit(130));
    });

  try {
    console.log("The journey: Alice sells and registers on ERC-8004; Bob buys from her by agent id.\n");
    report.info("(one real node runs per machine: this waits while another run holds it)");
    const images = await report.step(
      "the real node, with the images (built on first use, then cached)",
      async () => {
        const cluster = await sharedRealCluster(JOURNEY_IMAGES);
        return {
          cluster,
          images: (await ensureImages({ only: JOURNEY_IMAGES, log: () => undefined })) as Record<
            ImageName,
            LocalImage
          >,
        };
      },
    );
    report.info(`real node ${images.cluster.nodeIp}, kubeconfig ${images.cluster.kubeconfigPath}`);
    journey = new Journey({ ...images, dir: path.join(RUN_DIR, "journey"), suffix: "demo", report });
    const j = journey;
    await j.prepare();

    const agent = await j.sellerUp();
    report.info(`Alice's agent id: ${agent.agentId}  (${agent.agentRef})`);
    report.info(`tokenURI → ${agent.registrationUrl}`);
    report.info(`offer URL: ${agent.offerUrl}`);

    const status = await j.buyerUp(agent.agentRef);
    report.info(`Bob's purchase "${PURCHASE}" names only the agent id; resolved to ${status.endpoint}`);

    const fromBlock = (await j.chain.client.getBlockNumber()) + 1n;
    const before = await j.balances();
    report.info(`balances before: Alice ${usdc(before.seller)}, Bob ${usdc(before.buyer)}`);
    const calls = await report.step(`an agent pod calls Bob's LiteLLM with paid/${MODEL}`, () =>
      j.agentCalls(),
    );
    const accepts = calls.unpaid.paymentRequired?.accepts?.[0];
    report.info(
      `unpaid call to the offer: ${calls.unpaid.status} Payment Required, ${accepts?.amount} atomic units to ${accepts?.payTo}`,
    );
    report.info(`paid call: ${calls.plain.status} "${calls.plain.content ?? calls.plain.body}"`);
    report.info(
      `streamed call: ${calls.streamed.status}, ${calls.streamed.events} SSE events in ${calls.streamed.reads} reads over ${calls.streamed.spanMs} ms: "${calls.streamed.content}"`,
    );
    report.info(
      `third call, past maxTotal ${MAX_TOTAL}: ${calls.overBudget.status} ${calls.overBudget.body}`,
    );

    const settled = await j.settlements(fromBlock);
    for (const s of settled)
      report.info(`settled on anvil: tx ${s.txHash} (${usdc(s.amount)} from ${s.from})`);
    const after = await j.balances();
    report.info(`balances after:  Alice ${usdc(after.seller)}, Bob ${usdc(after.buyer)}`);
    const { seller, buyer } = await j.records(settled.length);
    report.info(
      `Alice's gateway counted ${seller.gatewaySettled} settlements (${usdc(seller.gatewayReceived)}), her facilitator ${seller.facilitatorSettled} (${usdc(seller.facilitatorAmount)})`,
    );
    report.info(
      `Bob's PurchaseRequest: ${buyer.status.requests} requests, spentTotal ${buyer.status.spentTotal}; his ledger: ${buyer.ledger.length} settled payments`,
    );

    if (keep) {
      console.log(
        `\nEverything stays up (--keep). Try:\n  KUBECONFIG=${images.cluster.kubeconfigPath} scripts/with-tools kubectl get pods -A\n  KUBECONFIG=${images.cluster.kubeconfigPath} scripts/with-tools kubectl -n ${j.ns.bob} get purchaserequests\nCtrl-C removes it all.`,
      );
      await new Promise<void>((resolve) => {
        waiting = resolve;
      });
    }
  } finally {
    await teardown();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    // A clear message, not a stack trace (DEBUG=1 shows it).
    console.error(`\ndemo failed: ${process.env.DEBUG ? (err.stack ?? err.message) : err.message}`);
    process.exit(1);
  },
);
