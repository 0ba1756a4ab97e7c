/**
 * `npm run demo [-- --keep | --down]`: the release journey on this machine, step by step (the
 * same steps as tests/integration/realCluster/journey.test.ts, from tests/harness/journey.ts).
 *
 * It starts what it needs and nothing that leaves the machine: a Docker engine for the images
 * (only if none runs), the real one-node cluster of the test harness (root, its own address,
 * bridge and firewall guard), and anvil bound to the node's address. Then Alice's stack sells and
 * registers an ERC-8004 agent, Bob's stack buys from her by agent id, and an agent pod pays
 * through Bob's LiteLLM. At the end everything it started is removed; with `--keep` it stays up
 * and the command returns, and `--down` (a later process) removes it, from what the demo
 * recorded in .tmp/demo.json.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { formatUnits } from "viem";
import { REGISTRATION_PATH, X402_DISCOVERY_PATH } from "../api/contract";
import { stopIdleDockerd } from "../tests/harness/docker";
import { RUN_DIR, sharedRealCluster, stopSharedClusters } from "../tests/harness/env";
import { ensureImages, type ImageName, type LocalImage } from "../tests/harness/images";
import {
  JOURNEY_IMAGES,
  Journey,
  type JourneyReporter,
  lineReporter,
  MAX_TOTAL,
  MODEL,
  OFFER,
  PURCHASE,
} from "../tests/harness/journey";
import { mountsUnder } from "../tests/harness/nodeHost";
import { type PortForward, portForward } from "../tests/harness/portForward";
import { alive, stopProcessGroups } from "../tests/harness/processes";
import { realNodeLeftovers, removeKeptCluster } from "../tests/harness/realCluster";
import { type DemoHost, MissingPrerequisite, missingPrerequisite } from "./demo/prerequisites";
import { DEMO_STATE_FILE, type DemoState, readDemoState, writeDemoState } from "./demo/state";

const USAGE = `usage: npm run demo [-- --keep | --down]

Runs the two-operator journey on this machine: a real one-node Kubernetes cluster, anvil, two
stacks (Alice sells and registers an ERC-8004 agent; Bob buys from her by agent id), paid calls
through Bob's LiteLLM, then removes everything it started.

  --keep   leave everything running after the journey and return
  --down   remove what a kept (or interrupted) demo started: its processes and port-forwards,
           the node's containers, mounts, bridge and iptables chains, anvil, its files
  --help   this text`;

/** A bad command line: the message and the usage, no stack trace. */
class UsageError extends Error {
  override name = "UsageError";
}

/** This machine, as the prerequisite check reads it. */
function thisHost(): DemoHost {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/sbin"];
  return {
    uid: process.getuid?.(),
    has: (bin) =>
      bin.startsWith("/") ? fs.existsSync(bin) : dirs.some((d) => d && fs.existsSync(path.join(d, bin))),
  };
}
const ANVIL = path.resolve(__dirname, "../node_modules/.bin/anvil");

const usdc = (atomic: bigint) => `${formatUnits(atomic, 6)} USDC`;

/** What Alice's gateway serves that a person opens, and what each answers without payment. */
const GATEWAY_PAGES: { what: string; path: string; status: number }[] = [
  { what: "storefront", path: "/", status: 200 },
  { what: "catalog", path: "/api/services.json", status: 200 },
  { what: "agent skill", path: "/skill.md", status: 200 },
  { what: "OpenAPI", path: "/openapi.json", status: 200 },
  { what: "ERC-8004 registration", path: REGISTRATION_PATH, status: 200 },
  { what: "x402 discovery", path: X402_DISCOVERY_PATH, status: 200 },
  { what: "her offer (402 unpaid)", path: `/services/${OFFER}/v1/chat/completions`, status: 402 },
];

/**
 * Forwards Alice's gateway Service to this machine's loopback and checks that each page answers
 * through it as it should (a URL printed is a URL that works); returns the forward and one line
 * per page.
 */
async function forwardGateway(
  report: JourneyReporter,
  kubeconfigPath: string,
  namespace: string,
): Promise<{ forward: PortForward; lines: string[] }> {
  return report.step("port-forward Alice's gateway to this machine", async () => {
    const forward = await portForward({
      kubeconfigPath,
      namespace,
      service: "x402-gateway",
      port: 8080,
      logDir: path.join(RUN_DIR, "logs"),
      name: "port-forward-alice-gateway",
    });
    try {
      const lines: string[] = [];
      for (const page of GATEWAY_PAGES) {
        const url = `${forward.url}${page.path}`;
        const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
        await res.arrayBuffer();
        if (res.status !== page.status)
          throw new Error(`${url} (Alice's ${page.what}) answered ${res.status}, not ${page.status}`);
        lines.push(`${page.what.padEnd(22)} ${url}`);
      }
      return { forward, lines };
    } catch (err) {
      await forward.process.stop();
      throw err;
    }
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const unknown = args.filter((a) => a !== "--keep" && a !== "--down");
  if (unknown.length > 0) throw new UsageError(`unknown argument ${unknown.join(" ")}\n\n${USAGE}`);
  if (args.includes("--keep") && args.includes("--down"))
    throw new UsageError(`--keep and --down do opposite things: give one\n\n${USAGE}`);
  if (args.includes("--down")) return down();
  const keep = args.includes("--keep");
  const missing = missingPrerequisite(thisHost(), ANVIL);
  if (missing) throw missing;
  const earlier = readDemoState();
  if (earlier)
    throw new UsageError(
      `a demo already ran here (pid ${earlier.pid}${alive(earlier.pid) ? ", still running" : ""}) and was not removed: run \`npm run demo -- --down\` first`,
    );
  const state: DemoState = {
    pid: process.pid,
    runDir: RUN_DIR,
    clusterDir: path.join(RUN_DIR, "real-cluster"),
  };
  writeDemoState(state);

  const report = lineReporter((line) => console.log(line));
  let journey: Journey | undefined;
  let gateway: { forward: PortForward; lines: string[] } | undefined;
  let kept = false;
  const teardown = async () => {
    console.log("\nRemoving everything the demo started");
    await gateway?.forward.process.stop();
    await journey?.chain?.stop();
    await report.step("stop the node: processes, pods, links, iptables chains, mounts, its data", () =>
      stopSharedClusters({ destroy: true }),
    );
    fs.rmSync(RUN_DIR, { recursive: true, force: true });
    fs.rmSync(DEMO_STATE_FILE, { force: true });
  };
  // The harness kills every process it started when this one is interrupted; what they leave
  // on the host (links, chains, mounts) is for --down, which reads what was recorded.
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.prependOnceListener(signal, () =>
      console.error(`\ninterrupted: \`npm run demo -- --down\` removes what the demo started`),
    );

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
    gateway = await forwardGateway(report, images.cluster.kubeconfigPath, j.ns.alice);
    const pages = gateway.lines;
    report.info(
      `Alice's gateway on this machine (kubectl port-forward, pid ${gateway.forward.process.child.pid}); open:`,
    );
    for (const line of pages) report.info(`  ${line}`);
    report.info(`(the links in them name her public origin, ${new URL(agent.offerUrl).origin}: cluster DNS)`);

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
      const cluster = await images.cluster.handOver();
      writeDemoState({
        ...state,
        kept: { pids: cluster.pids, sysctls: cluster.sysctls },
        anvilPid: j.chain.anvil.handOver(),
        forwardPids: [gateway.forward.process.handOver()],
      });
      kept = true;
      const kubectl = `KUBECONFIG=${images.cluster.kubeconfigPath} scripts/with-tools kubectl`;
      console.log(
        [
          `\nEverything stays up (--keep), recorded in ${path.relative(process.cwd(), DEMO_STATE_FILE)}.`,
          "Alice's gateway stays forwarded to this machine:",
          ...pages.map((line) => `  ${line}`),
          `(if the forward stops, e.g. when her gateway pod restarts, reopen it with:\n  ${gateway.forward.command})`,
          "Try:",
          `  ${kubectl} get pods -A`,
          `  ${kubectl} -n ${j.ns.bob} get purchaserequests`,
          `anvil: ${j.chain.anvil.rpcUrl}`,
          "`npm run demo -- --down` removes it all, the port-forward too.",
        ].join("\n"),
      );
    }
  } finally {
    if (!kept) await teardown();
  }
}

/** `--down`: removes what the recorded demo started, then checks that nothing of it is left. */
async function down(): Promise<void> {
  const state = readDemoState();
  if (!state) {
    console.log(
      `Nothing to remove: no demo is running (no ${path.relative(process.cwd(), DEMO_STATE_FILE)}).`,
    );
    return;
  }
  const report = lineReporter((line) => console.log(line));
  if (!state.kept && state.pid !== process.pid && alive(state.pid))
    await report.step(`stop the demo (pid ${state.pid}) and the processes it runs`, () =>
      stopProcessGroups([state.pid], 30_000),
    );
  const forwards = state.forwardPids ?? [];
  if (forwards.length > 0)
    await report.step(`the port-forward to Alice's gateway (pid ${forwards.join(", ")})`, () =>
      stopProcessGroups(forwards),
    );
  await report.step("the node: its processes, containers, mounts, bridge, iptables chains, data", () =>
    removeKeptCluster({
      dir: state.clusterDir,
      pids: state.kept?.pids ?? [],
      sysctls: state.kept?.sysctls ?? {},
    }),
  );
  if (state.anvilPid !== undefined) {
    const pid = state.anvilPid;
    await report.step(`anvil (pid ${pid})`, () => stopProcessGroups([pid]));
  }
  const stopped = await report.step(
    "the Docker engine, if a test run or the demo started it and none uses it",
    () => stopIdleDockerd(),
  );
  report.info(stopped ? "stopped it" : "left alone (it was running before, or another run uses it)");
  await report.step(`the demo's files (${path.relative(process.cwd(), state.runDir)})`, async () => {
    const mounts = mountsUnder(state.runDir);
    if (mounts.length > 0) throw new Error(`mounts remain, not deleting:\n${mounts.join("\n")}`);
    fs.rmSync(state.runDir, { recursive: true, force: true });
  });
  const left = [
    ...[state.pid, state.anvilPid ?? 0, ...forwards, ...(state.kept?.pids ?? [])]
      .filter((pid) => pid > 0 && pid !== process.pid && alive(pid))
      .map((pid) => `process ${pid}`),
    ...realNodeLeftovers(state.clusterDir),
  ];
  if (left.length > 0)
    throw new Error(`still there (${DEMO_STATE_FILE} kept for another --down):\n  ${left.join("\n  ")}`);
  fs.rmSync(DEMO_STATE_FILE, { force: true });
  console.log(
    "Nothing of the demo is left: no process, port-forward, container, mount, link or iptables chain of it.",
  );
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    // One clear line (or the usage), not a stack trace; DEBUG=1 shows the trace.
    if (err instanceof MissingPrerequisite) console.error(`demo cannot run here: ${err.message}`);
    else if (err instanceof UsageError) console.error(err.message);
    else console.error(`\ndemo failed: ${process.env.DEBUG ? (err.stack ?? err.message) : err.message}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
