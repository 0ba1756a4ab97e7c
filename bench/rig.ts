/**
 * What the runtime benchmarks share: a control plane with the CRDs and a `bench` namespace,
 * anvil with the payment contracts, the self-run facilitator and the seller runtime (controller
 * and gateway, with a batch-settlement channel-state directory), every process on loopback and
 * stopped at the end, whatever happened.
 */
import * as path from "node:path";
import { privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../tests/harness/anvil";
import { type ControlPlane, startControlPlane } from "../tests/harness/controlPlane";
import { RUN_DIR } from "../tests/harness/env";
import { type PaymentChain, startPaymentChain } from "../tests/harness/paymentChain";
import { freePort, type ManagedProcess, startProcess } from "../tests/harness/processes";
import {
  createNamespace,
  createObject,
  installCrds,
  startRuntime,
  startSellerRuntime,
  TSX_LOADER,
  waitForCondition,
  waitForHttp,
} from "../tests/integration/runtime/helpers";

export const BENCH_NAMESPACE = "bench";
/** Who the benchmark offers are paid to. */
export const BENCH_PAY_TO = privateKeyToAccount(ANVIL_KEYS[1]).address;
const REPO = path.resolve(__dirname, "..");

export interface BenchRig {
  readonly cp: ControlPlane;
  readonly chain: PaymentChain;
  readonly logDir: string;
  readonly facilitator: ManagedProcess;
  readonly facilitatorUrl: string;
  readonly gateway: ManagedProcess;
  /** The gateway's public base URL. */
  readonly publicUrl: string;
  /** The gateway's internal base URL (/metrics). */
  readonly internalUrl: string;
  /** Starts `bench/servers.ts <args>` as its own node process (so /proc/<pid> is the server). */
  server(name: string, args: string[]): ManagedProcess;
  /** Any other process to stop at the end. */
  adopt(proc: ManagedProcess): void;
}

/**
 * Creates a ServiceOffer in the bench namespace, paid on the rig's chain to BENCH_PAY_TO in
 * `asset` at `price`, and waits until it is Ready. `spec` adds or overrides the other fields.
 */
export async function readyOffer(
  rig: Pick<BenchRig, "cp" | "chain">,
  name: string,
  payment: { asset: unknown; price: Record<string, string> },
  spec: Record<string, unknown>,
): Promise<void> {
  await createObject(rig.cp, BENCH_NAMESPACE, "serviceoffers", "ServiceOffer", name, {
    payment: {
      scheme: "exact",
      network: rig.chain.network,
      payTo: BENCH_PAY_TO,
      maxTimeoutSeconds: 600,
      ...payment,
    },
    ...spec,
  });
  await waitForCondition(
    rig.cp,
    BENCH_NAMESPACE,
    "serviceoffers",
    name,
    { type: "Ready", status: "True" },
    { timeoutMs: 60_000 },
  );
}

export async function withBenchRig(name: string, run: (rig: BenchRig) => Promise<void>): Promise<void> {
  const dir = path.join(RUN_DIR, name);
  const logDir = path.join(dir, "logs");
  const procs: ManagedProcess[] = [];
  const cp = await startControlPlane({ dir: path.join(dir, "cluster") });
  const chain = await startPaymentChain(logDir);
  try {
    await installCrds(cp);
    await createNamespace(cp, BENCH_NAMESPACE);
    const facilitatorPort = await freePort();
    const facilitator = startRuntime("facilitator", "facilitator", [], logDir, {
      SIGNER_KEY: ANVIL_KEYS[0],
      RPC_URL: chain.anvil.rpcUrl,
      PORT: String(facilitatorPort),
      HOST: "127.0.0.1",
    });
    procs.push(facilitator);
    const facilitatorUrl = `http://127.0.0.1:${facilitatorPort}`;
    await waitForHttp("the facilitator", `${facilitatorUrl}/supported`, facilitator);
    const gatewayNodeOptions = [
      process.env.BENCH_GATEWAY_NODE_OPTIONS,
      process.env.BENCH_CPU_PROF && `--cpu-prof --cpu-prof-dir=${path.join(dir, "profile")}`,
    ]
      .filter(Boolean)
      .join(" ");
    const seller = await startSellerRuntime({
      cp,
      namespace: BENCH_NAMESPACE,
      logDir,
      facilitatorUrl,
      controllerArgs: [],
      gatewayEnv: {
        CHANNEL_STATE_DIR: path.join(dir, "channel-state"),
        // BENCH_CPU_PROF=1: the gateway writes a V8 CPU profile (open it in Chrome DevTools) at exit.
        // BENCH_GATEWAY_NODE_OPTIONS: Node options for the gateway alone (e.g. GC settings to try).
        ...(gatewayNodeOptions ? { NODE_OPTIONS: gatewayNodeOptions } : {}),
      },
    });
    procs.push(seller.gateway, seller.controller);
    await run({
      cp,
      chain,
      logDir,
      facilitator,
      facilitatorUrl,
      gateway: seller.gateway,
      publicUrl: seller.publicUrl,
      internalUrl: seller.internalUrl,
      server: (serverName, args) => {
        const proc = startProcess(
          serverName,
          process.execPath,
          ["--import", TSX_LOADER, path.join(REPO, "bench/servers.ts"), ...args],
          { logDir },
        );
        procs.push(proc);
        return proc;
      },
      adopt: (proc) => void procs.push(proc),
    });
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await chain.stop();
    await cp.destroy();
  }
}
