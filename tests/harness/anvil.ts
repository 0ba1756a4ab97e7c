import * as fs from "node:fs";
import * as path from "node:path";
import { freePort, type ManagedProcess, startProcess, tail, waitFor } from "./processes";

/** anvil's first well-known development account (never a real key). */
export const ANVIL_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
] as const;

export interface Anvil {
  readonly rpcUrl: string;
  readonly chainId: number;
  stop(): Promise<void>;
  /** Lets anvil outlive this process; returns its pid (see ManagedProcess.handOver). */
  handOver(): number;
}

const ANVIL_BIN = path.resolve(__dirname, "../../node_modules/.bin/anvil");

/**
 * Starts a real anvil chain on a free port of loopback, or of `host` (the real node's address,
 * so that pods reach it).
 */
export async function startAnvil(opts: { logDir: string; chainId?: number; host?: string }): Promise<Anvil> {
  if (!fs.existsSync(ANVIL_BIN)) {
    throw new Error("anvil is not installed: run `npm ci` (it installs @foundry-rs/anvil-linux-amd64)");
  }
  const chainId = opts.chainId ?? 84532;
  const host = opts.host ?? "127.0.0.1";
  const port = await freePort(host);
  const proc: ManagedProcess = startProcess(
    `anvil-${port}`,
    ANVIL_BIN,
    ["--host", host, "--port", String(port), "--chain-id", String(chainId), "--silent"],
    { logDir: opts.logDir },
  );
  const rpcUrl = `http://${host}:${port}`;
  await waitFor(
    "anvil JSON-RPC",
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`anvil exited: ${tail(proc.logFile)}`);
      const res = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      const body = (await res.json()) as { result?: string };
      return Number(body.result) === chainId;
    },
    { timeoutMs: 20_000, describe: () => tail(proc.logFile) },
  );
  return { rpcUrl, chainId, stop: () => proc.stop(), handOver: () => proc.handOver() };
}
