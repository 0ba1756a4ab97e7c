/**
 * `obol-runtime facilitator`: the self-run x402 facilitator. The signer key comes from
 * SIGNER_KEY_FILE (a mounted Secret) or SIGNER_KEY, the access token the gateway presents from
 * FACILITATOR_TOKEN_FILE or FACILITATOR_TOKEN; the other settings are flags or env.
 */
import type { Network } from "@x402/core/types";
import { ENV, PORTS } from "../../api/contract";
import { validAccessToken } from "../shared/facilitatorAccess";
import { readPrivateKey, readSecret, secretConfigured } from "../shared/secrets";
import type { Command } from "../shared/startup";
import { FacilitatorMetrics } from "./metrics";
import { startFacilitator } from "./server";

const SETTINGS = {
  "rpc-url": { env: ENV.rpcUrl },
  /** Comma-separated CAIP-2 networks; default: the RPC endpoint's chain. */
  networks: { env: "NETWORKS" },
  port: { env: ENV.port },
  host: { env: "HOST" },
  /** How often the signer's native balance (a metric) is read. */
  "balance-refresh-ms": { env: "BALANCE_REFRESH_MS" },
  /** How long a settle waits for the receipt before answering settlement_pending (below the gateway's timeout). */
  "receipt-timeout-ms": { env: "RECEIPT_TIMEOUT_MS" },
  /** How often a settlement's receipt is asked for: an `exact` answer waits for it before its first byte. */
  "receipt-poll-ms": { env: "RECEIPT_POLL_MS" },
} as const;

export const command: Command<keyof typeof SETTINGS> = {
  name: "facilitator",
  settings: SETTINGS,
  shutdownDeadlineMs: 8_000,
  async start({ settings: s, log }) {
    const rpcUrl = s.string("rpc-url");
    if (!rpcUrl)
      throw new Error(`${s.describe("rpc-url")} must be set: the chain the facilitator settles on`);
    const networks = s
      .string("networks")
      ?.split(",")
      .map((n) => n.trim() as Network);
    const accessToken = secretConfigured(ENV.facilitatorToken) ? readSecret(ENV.facilitatorToken) : undefined;
    if (accessToken !== undefined && !validAccessToken(accessToken))
      throw new Error(
        `${ENV.facilitatorToken} must be a bearer token (letters, digits and -._~+/ then optional =), not empty`,
      );
    if (accessToken === undefined)
      log(
        `facilitator: ${ENV.facilitatorToken}_FILE is not set, so /verify and /settle answer any caller that reaches this port (one could have it sign a channel refund); the stack's program always sets it`,
        { level: "warn" },
      );
    const running = await startFacilitator({
      ...(accessToken !== undefined ? { accessToken } : {}),
      metrics: new FacilitatorMetrics(),
      balanceRefreshMs: s.int("balance-refresh-ms", 30_000),
      receiptTimeoutMs: s.int("receipt-timeout-ms", 45_000),
      receiptPollMs: s.int("receipt-poll-ms", 250),
      log,
      signerKey: readPrivateKey(ENV.signerKey),
      rpcUrl,
      ...(networks ? { networks } : {}),
      port: s.int("port", PORTS.facilitator),
      host: s.string("host") ?? "0.0.0.0",
    });
    return {
      summary: `${running.address} serving ${running.networks.join(", ")} on ${running.url}`,
      stop: () => running.close(),
    };
  },
};
