/**
 * `obol-runtime gateway` with the x402 payment path: the gateway (routing, catalogs) plus the
 * x402 gate, verifying and settling through FACILITATOR_URL (or --facilitator-url).
 */
import { HTTPFacilitatorClient } from "@x402/core/server";
import { run as runGateway } from "../gateway/main";
import { PaymentMetrics } from "./metrics";
import { X402PaymentGate } from "./x402Gate";

/** Pulls `--name=value` / `--name value` out of argv (the gateway's own flags stay). */
function takeFlag(argv: string[], name: string): { value: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let value: string | undefined;
  const queue = [...argv];
  for (let arg = queue.shift(); arg !== undefined; arg = queue.shift()) {
    if (arg === `--${name}`) value = queue.shift();
    else if (arg.startsWith(`--${name}=`)) value = arg.slice(name.length + 3);
    else rest.push(arg);
  }
  return { value, rest };
}

export async function run(argv: string[]): Promise<void> {
  const { value, rest } = takeFlag(argv, "facilitator-url");
  const url = value ?? process.env.FACILITATOR_URL;
  if (!url) {
    throw new Error(
      "FACILITATOR_URL (or --facilitator-url) must be set: without a facilitator every paid route would fail closed",
    );
  }
  const metrics = new PaymentMetrics();
  const gate = new X402PaymentGate({
    facilitator: new HTTPFacilitatorClient({ url, timeoutMs: 60_000 }),
    metrics,
    log: (message) => console.log(message),
  });
  await runGateway(rest, gate, metrics);
}
