/**
 * `kubectl port-forward` to a Service of the real node, on this machine's loopback: how a user
 * on the machine opens what a pod serves (`npm run demo` forwards Alice's gateway: storefront,
 * catalogs, offers). A process of its own, so `--keep` can hand it over like the node's.
 */
import * as fs from "node:fs";
import { type ManagedProcess, startProcess, tail, waitFor } from "./processes";
import { binary } from "./realCluster";

export interface PortForwardOptions {
  kubeconfigPath: string;
  namespace: string;
  service: string;
  /** The Service's port. */
  port: number;
  /** Where the process writes its log (`<name>.log`). */
  logDir: string;
  name?: string;
  /** The loopback port; by default one the kernel picks. */
  localPort?: number;
}

export interface PortForward {
  /** `http://127.0.0.1:<local port>` */
  readonly url: string;
  readonly localPort: number;
  readonly process: ManagedProcess;
  /** The command a user runs to open the same forward again (it stops with its pod). */
  readonly command: string;
}

/** Starts the forward and returns once kubectl listens; a refusal throws with kubectl's reason. */
export async function portForward(opts: PortForwardOptions): Promise<PortForward> {
  const target = `svc/${opts.service}`;
  const args = (local: string) => [
    "-n",
    opts.namespace,
    "port-forward",
    "--address",
    "127.0.0.1",
    target,
    `${local}:${opts.port}`,
  ];
  const proc = startProcess(
    opts.name ?? `port-forward-${opts.namespace}-${opts.service}`,
    binary("kubectl"),
    ["--kubeconfig", opts.kubeconfigPath, ...args(opts.localPort ? String(opts.localPort) : "")],
    { logDir: opts.logDir },
  );
  // kubectl says where it listens: "Forwarding from 127.0.0.1:41234 -> 8080".
  const listening = new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${opts.port}`);
  let localPort = 0;
  const exited = () => proc.child.exitCode !== null || proc.child.signalCode !== null;
  try {
    await waitFor(
      `kubectl port-forward ${opts.namespace}/${target} to listen`,
      async () => {
        const m = listening.exec(fs.existsSync(proc.logFile) ? fs.readFileSync(proc.logFile, "utf8") : "");
        localPort = Number(m?.[1] ?? 0);
        return localPort > 0 || exited();
      },
      { timeoutMs: 30_000, intervalMs: 200, describe: () => tail(proc.logFile, 5) },
    );
    if (localPort === 0) throw new Error(`kubectl port-forward exited: ${tail(proc.logFile, 5)}`);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    url: `http://127.0.0.1:${localPort}`,
    localPort,
    process: proc,
    command: `KUBECONFIG=${opts.kubeconfigPath} scripts/with-tools kubectl ${args(String(localPort)).join(" ")}`,
  };
}
