/**
 * The self-run x402 facilitator: @x402/core's transport-less facilitator engine with
 * @x402/evm's exact scheme (EIP-3009 and Permit2), served over HTTP as /verify, /settle and
 * /supported. It submits settlements with its own key and pays the gas.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { x402Facilitator } from "@x402/core/facilitator";
import type { Network, PaymentPayload, PaymentRequirements } from "@x402/core/types";
import {
  type ExactEvmPayloadV2,
  isPermit2Payload,
  PERMIT2_ADDRESS,
  toFacilitatorEvmSigner,
  x402ExactPermit2ProxyAddress,
} from "@x402/evm";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";
import { createWalletClient, type Hex, http as httpTransport, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { bindingOf } from "../payments/paymentHeader";
import { readJsonBody, sendJson } from "../shared/http";
import { type LogFn, REQUEST_ID_HEADER, requestIdFrom } from "../shared/log";
import { serveMetrics } from "../shared/metrics";
import type { FacilitatorMetrics } from "./metrics";
import { SendQueue } from "./sendQueue";

export interface FacilitatorOptions {
  /** The key that submits settlement transactions. Never logged. */
  signerKey: Hex;
  rpcUrl: string;
  /** CAIP-2 networks served; defaults to the RPC endpoint's chain. */
  networks?: Network[];
  port?: number;
  host?: string;
  /** Served at /metrics when set; the signer's balance is refreshed every `balanceRefreshMs`. */
  metrics?: FacilitatorMetrics;
  /** Default 30 s; the first refresh happens at start. */
  balanceRefreshMs?: number;
  log?: LogFn;
}

export interface RunningFacilitator {
  readonly url: string;
  readonly address: `0x${string}`;
  readonly networks: Network[];
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

/** The contracts a Permit2 payment goes through; @x402/evm uses these canonical addresses. */
const PERMIT2_CONTRACTS = [
  ["Permit2", PERMIT2_ADDRESS],
  ["x402's exact Permit2 proxy", x402ExactPermit2ProxyAddress],
] as const;

function isPermit2Payment(payment: PaymentPayload): boolean {
  const payload = (payment as { payload?: unknown }).payload;
  return typeof payload === "object" && payload !== null && isPermit2Payload(payload as ExactEvmPayloadV2);
}

function refusal(path: string, payment: PaymentPayload, why: string) {
  const reason = "permit2_proxy_not_deployed";
  const payer = (payment.payload as { permit2Authorization?: { from?: string } }).permit2Authorization?.from;
  return path === "/verify"
    ? { isValid: false, invalidReason: reason, invalidMessage: why, payer }
    : {
        success: false,
        errorReason: reason,
        errorMessage: why,
        transaction: "",
        network: payment.accepted?.network,
        payer,
      };
}

/** The amount a requirement asks for: v2 `amount`, v1 `maxAmountRequired`. */
function requiredAmount(r: PaymentRequirements): bigint {
  const raw =
    (r as { amount?: string; maxAmountRequired?: string }).amount ??
    (r as { maxAmountRequired?: string }).maxAmountRequired;
  try {
    return BigInt(raw ?? 0);
  } catch {
    return 0n;
  }
}

export async function startFacilitator(opts: FacilitatorOptions): Promise<RunningFacilitator> {
  const { metrics } = opts;
  const log: LogFn = opts.log ?? (() => {});
  const account = privateKeyToAccount(opts.signerKey);
  const client = createWalletClient({ account, transport: httpTransport(opts.rpcUrl) }).extend(publicActions);
  /** An RPC call, counted in obol_facilitator_rpc_errors_total when it fails. */
  const rpc = async <T>(call: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      metrics?.rpcErrors.inc({ call });
      throw err;
    }
  };
  const networks = opts.networks ?? [
    `eip155:${await rpc("getChainId", () => client.getChainId())}` as Network,
  ];
  // Every transaction from this key goes through one queue with an explicit nonce.
  const sends = new SendQueue({
    pendingNonce: () =>
      rpc("getTransactionCount", () =>
        client.getTransactionCount({ address: account.address, blockTag: "pending" }),
      ),
  });
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    readContract: (args) =>
      rpc("readContract", () => client.readContract(args as Parameters<typeof client.readContract>[0])),
    verifyTypedData: (args) =>
      rpc("verifyTypedData", () =>
        client.verifyTypedData(args as Parameters<typeof client.verifyTypedData>[0]),
      ),
    writeContract: (args) =>
      rpc("writeContract", () =>
        sends.run((nonce) =>
          client.writeContract({
            ...(args as Parameters<typeof client.writeContract>[0]),
            account,
            chain: null,
            nonce,
          }),
        ),
      ),
    sendTransaction: (args) =>
      rpc("sendTransaction", () =>
        sends.run((nonce) => client.sendTransaction({ ...args, account, chain: null, nonce })),
      ),
    waitForTransactionReceipt: (args) =>
      rpc("waitForTransactionReceipt", () => client.waitForTransactionReceipt(args)),
    getCode: (args) => rpc("getCode", () => client.getCode(args)),
  });

  // The signer pays the gas: its balance is the first thing to run out.
  const refreshBalance = async () => {
    try {
      const balance = await rpc("getBalance", () => client.getBalance({ address: account.address }));
      for (const network of networks) {
        metrics?.signerBalance.set({ network, address: account.address }, Number(balance));
        metrics?.balanceUpdated.set({ network }, Date.now() / 1000);
      }
    } catch (err) {
      log("facilitator: could not read the signer's balance", { level: "warn", error: err });
    }
  };
  let balanceTimer: NodeJS.Timeout | undefined;
  if (metrics) {
    await refreshBalance();
    balanceTimer = setInterval(() => void refreshBalance(), opts.balanceRefreshMs ?? 30_000);
    balanceTimer.unref();
  }
  const recordGas = async (network: string, tx: string) => {
    try {
      const receipt = await rpc("getTransactionReceipt", () =>
        client.getTransactionReceipt({ hash: tx as Hex }),
      );
      metrics?.gasSpent.inc({ network }, Number(receipt.gasUsed * receipt.effectiveGasPrice));
    } catch {
      // counted as an RPC error; the settlement itself stands
    }
    void refreshBalance();
  };
  /**
   * Settlements in flight by authorization: with several gateway replicas, two can ask to settle
   * the same signed payment at once. Only the first is sent; the other is refused at once instead
   * of submitting a transaction that can only revert and burn gas.
   */
  const settling = new Set<string>();
  const authorizationKey = (payment: PaymentPayload): string | undefined => {
    const b = bindingOf((payment.payload ?? {}) as Record<string, unknown>);
    return b.nonce ? `${(b.from ?? "").toLowerCase()}:${b.nonce.toLowerCase()}` : undefined;
  };
  /**
   * A call to an address without code succeeds and moves nothing, and @x402/evm's simulation of
   * the proxy's `settle` (no return value) cannot tell. So before any Permit2 verify or settle,
   * Permit2 and x402's proxy must have code on the chain; checked every time (one eth_getCode
   * each), so a chain that loses them is noticed at once.
   */
  const missingPermit2Contract = async (payment: PaymentPayload): Promise<string | undefined> => {
    if (!isPermit2Payment(payment)) return undefined;
    for (const [name, address] of PERMIT2_CONTRACTS) {
      const code = await client.getCode({ address });
      if (!code || code === "0x") return `${name} has no code at ${address} on this chain`;
    }
    return undefined;
  };
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks });

  const server = http.createServer(async (req, res) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && (path === "/healthz" || path === "/readyz"))
        return sendJson(res, 200, { ok: true });
      if (req.method === "GET" && path === "/supported")
        return sendJson(res, 200, facilitator.getSupported());
      if (req.method === "GET" && path === "/metrics" && metrics) return serveMetrics(res, metrics);
      if (req.method === "POST" && (path === "/verify" || path === "/settle")) {
        const body = (await readJsonBody(req, MAX_BODY)) as {
          paymentPayload?: PaymentPayload;
          paymentRequirements?: PaymentRequirements;
        };
        if (!body?.paymentPayload || !body.paymentRequirements) {
          return sendJson(res, 400, {
            error: "body must be {x402Version, paymentPayload, paymentRequirements}",
          });
        }
        const op = path.slice(1) as "verify" | "settle";
        const requirements = body.paymentRequirements;
        const network = requirements.network ?? "";
        const fields = {
          requestId: requestIdFrom(req.headers[REQUEST_ID_HEADER]),
          network,
          asset: requirements.asset,
          amount: requiredAmount(requirements),
        };
        const end = metrics?.duration.startTimer({ op });
        const key = op === "settle" ? authorizationKey(body.paymentPayload) : undefined;
        if (key && settling.has(key)) {
          end?.();
          metrics?.requests.inc({ op, network, outcome: "failed", reason: "settlement_in_progress" });
          log("facilitator: refused a second settlement of an authorization in flight", fields);
          return sendJson(res, 200, {
            success: false,
            errorReason: "settlement_in_progress",
            errorMessage: "this authorization is being settled by another request",
            transaction: "",
            network,
          });
        }
        if (key) settling.add(key);
        try {
          const missing = await missingPermit2Contract(body.paymentPayload);
          const result = missing
            ? refusal(path, body.paymentPayload, missing)
            : op === "verify"
              ? await facilitator.verify(body.paymentPayload, requirements)
              : await facilitator.settle(body.paymentPayload, requirements);
          end?.();
          recordOutcome(op, fields, result as Outcome);
          return sendJson(res, 200, result);
        } catch (err) {
          end?.();
          metrics?.requests.inc({ op, network, outcome: "error", reason: "exception" });
          log(`facilitator: ${op} failed`, { ...fields, level: "error", error: err });
          throw err;
        } finally {
          if (key) settling.delete(key);
        }
      }
      sendJson(res, 404, { error: "not found" });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      sendJson(res, (err as { status?: number }).status ?? 500, { error: message });
    }
  });
  type Outcome = {
    isValid?: boolean;
    invalidReason?: string;
    success?: boolean;
    errorReason?: string;
    transaction?: string;
    payer?: string;
  };
  const recordOutcome = (
    op: "verify" | "settle",
    fields: { requestId: string; network: string; asset: string; amount: bigint },
    r: Outcome,
  ) => {
    const ok = op === "verify" ? r.isValid === true : r.success === true;
    const reason = (op === "verify" ? r.invalidReason : r.errorReason) ?? "";
    const outcome = op === "verify" ? (ok ? "valid" : "invalid") : ok ? "settled" : "failed";
    metrics?.requests.inc({ op, network: fields.network, outcome, reason: ok ? "" : reason });
    if (op === "settle" && ok) {
      metrics?.settledAmount.inc({ network: fields.network, asset: fields.asset }, Number(fields.amount));
      log("facilitator: settled", { ...fields, payer: r.payer, transaction: r.transaction });
      if (r.transaction) void recordGas(fields.network, r.transaction);
    } else if (!ok) {
      log(`facilitator: ${op} refused`, { ...fields, level: "warn", payer: r.payer, reason });
    }
  };
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    address: account.address,
    networks,
    close: () => {
      clearInterval(balanceTimer);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
