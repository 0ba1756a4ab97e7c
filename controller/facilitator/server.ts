/**
 * The self-run x402 facilitator: @x402/core's transport-less facilitator engine with
 * @x402/evm's exact scheme (EIP-3009 and Permit2) and its upto scheme (Permit2: settles the
 * metered amount, up to the signed maximum), served over HTTP as /verify, /settle and
 * /supported (upto's kind carries `extra.facilitatorAddress`, the address its witness binds), and
 * its batch-settlement scheme (channels: a deposit, then cumulative vouchers the seller's gateway
 * checks itself and claims in batches; the kind carries `extra.receiverAuthorizer`). It submits
 * settlements with its own key and pays the gas.
 */
import { AsyncLocalStorage } from "node:async_hooks";
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
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/facilitator";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";
import { UptoEvmScheme } from "@x402/evm/upto/facilitator";
import { EIP2612_GAS_SPONSORING } from "@x402/extensions";
import { createWalletClient, type Hex, http as httpTransport, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { bindingOf } from "../payments/paymentHeader";
import { presentsToken } from "../shared/facilitatorAccess";
import { readJsonBody, sendJson } from "../shared/http";
import { errorMessage, type LogFn, REQUEST_ID_HEADER, requestIdFrom } from "../shared/log";
import { serveMetrics } from "../shared/metrics";
import type { FacilitatorMetrics } from "./metrics";
import { SendQueue } from "./sendQueue";
import { pendingTransaction, SubmittedSettlements } from "./settlements";

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
  /**
   * How long a settle waits for its transaction's receipt before answering `settlement_pending`
   * (default 45 s, below the gateway's 60 s facilitator timeout, so the gateway hears which
   * transaction is pending instead of timing out).
   */
  receiptTimeoutMs?: number;
  /**
   * How often a receipt is polled for (default 250 ms). A settled `exact` answer starts when its
   * transaction is mined, so the poll adds up to this much to its first byte; viem's default of
   * 4 s (1 s before) made a 2-second-block chain look twice as slow.
   */
  receiptPollMs?: number;
  /** How long a pending settlement is followed to its final state (default 30 minutes). */
  followTimeoutMs?: number;
  /**
   * When set, /verify and /settle answer only callers presenting it as a bearer token (the
   * gateway); anyone else gets 401 and nothing is verified, signed or submitted. Never logged.
   */
  accessToken?: string;
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
const PERMIT2_CONTRACTS = {
  exact: [
    ["Permit2", PERMIT2_ADDRESS],
    ["x402's exact Permit2 proxy", x402ExactPermit2ProxyAddress],
  ],
  upto: [
    ["Permit2", PERMIT2_ADDRESS],
    ["x402's upto Permit2 proxy", x402UptoPermit2ProxyAddress],
  ],
} as const;

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
  const client = createWalletClient({
    account,
    transport: httpTransport(opts.rpcUrl),
    pollingInterval: opts.receiptPollMs ?? 250,
  }).extend(publicActions);
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
  const receiptTimeoutMs = opts.receiptTimeoutMs ?? 45_000;
  /** The transactions broadcast on behalf of the /settle request being served. */
  const broadcast = new AsyncLocalStorage<Hex[]>();
  const sent = (hash: Hex): Hex => {
    broadcast.getStore()?.push(hash);
    return hash;
  };
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
        sends
          .run((nonce) =>
            client.writeContract({
              ...(args as Parameters<typeof client.writeContract>[0]),
              account,
              chain: null,
              nonce,
            }),
          )
          .then(sent),
      ),
    sendTransaction: (args) =>
      rpc("sendTransaction", () =>
        sends.run((nonce) => client.sendTransaction({ ...args, account, chain: null, nonce })).then(sent),
      ),
    waitForTransactionReceipt: (args) =>
      rpc("waitForTransactionReceipt", () =>
        client.waitForTransactionReceipt({ ...args, timeout: receiptTimeoutMs }),
      ),
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
    const contracts = payment.accepted?.scheme === "upto" ? PERMIT2_CONTRACTS.upto : PERMIT2_CONTRACTS.exact;
    for (const [name, address] of contracts) {
      const code = await client.getCode({ address });
      if (!code || code === "0x") return `${name} has no code at ${address} on this chain`;
    }
    return undefined;
  };
  const submitted = new SubmittedSettlements();
  const pendingAnswer = (tx: Hex, network: string, payer: string | undefined, why: string) => ({
    success: false,
    errorReason: "settlement_pending",
    errorMessage: `transaction ${tx} was broadcast but ${why}; it may still be mined`,
    transaction: tx,
    network,
    payer,
  });
  /** Follows a pending settlement's transaction to its final state: logged and counted once. */
  const follow = (key: string | undefined, tx: Hex, fields: Fields, payer: string | undefined) => {
    metrics?.pendingSettlements.inc({ network: fields.network });
    void (async () => {
      let outcome: "settled" | "reverted" | "unknown" = "unknown";
      try {
        const receipt = await client.waitForTransactionReceipt({
          hash: tx,
          timeout: opts.followTimeoutMs ?? 30 * 60_000,
        });
        outcome = receipt.status === "success" ? "settled" : "reverted";
      } catch (err) {
        log("facilitator: pending settlement not final when following stopped", {
          ...fields,
          level: "error",
          payer,
          transaction: tx,
          error: err,
        });
      }
      metrics?.pendingSettlements.dec({ network: fields.network });
      metrics?.pendingResolved.inc({ network: fields.network, outcome });
      if (outcome === "unknown") return;
      // Only while its caller still waits for the answer (not yet given by a repeated settle).
      if (key && submitted.get(key)) submitted.record(key, tx, outcome, payer);
      if (outcome === "settled") {
        metrics?.settledAmount.inc({ network: fields.network, asset: fields.asset }, Number(fields.amount));
        void recordGas(fields.network, tx);
      }
      log("facilitator: pending settlement final", {
        ...fields,
        level: outcome === "settled" ? "info" : "warn",
        payer,
        transaction: tx,
        outcome,
      });
    })();
  };
  /**
   * A settle. An authorization this facilitator already submitted is answered from its
   * transaction (never verified or sent again); a broadcast whose receipt did not arrive in time
   * is answered `settlement_pending` with its transaction, and followed.
   */
  const settle = async (
    payment: PaymentPayload,
    requirements: PaymentRequirements,
    key: string | undefined,
    fields: Fields,
  ): Promise<{ result: Outcome & { network: string }; repeated: boolean }> => {
    const network = requirements.network;
    const known = key ? submitted.get(key) : undefined;
    if (key && known) {
      let state = known.state;
      if (state === "pending") {
        const receipt = await client
          .getTransactionReceipt({ hash: known.transaction })
          .catch(() => undefined);
        if (receipt) {
          state = receipt.status === "success" ? "settled" : "reverted";
          submitted.record(key, known.transaction, state, known.payer);
        }
      }
      const { transaction, payer } = known;
      // A final answer is given once, to the caller that was left without one; after that the
      // authorization is settled like any other (and a second settle of it is refused).
      if (state !== "pending") submitted.forget(key);
      const result =
        state === "settled"
          ? { success: true, transaction, network, payer }
          : state === "reverted"
            ? { success: false, errorReason: "transaction_failed", transaction, network, payer }
            : pendingAnswer(transaction, network, payer, "is not mined yet");
      return { result, repeated: true };
    }
    const missing = await missingPermit2Contract(payment);
    if (missing)
      return {
        result: refusal("/settle", payment, missing) as Outcome & { network: string },
        repeated: false,
      };
    const txs: Hex[] = [];
    const result = await broadcast.run(txs, () => facilitator.settle(payment, requirements));
    const pending = pendingTransaction(result, txs);
    if (pending) {
      if (key) submitted.record(key, pending, "pending", result.payer);
      follow(key, pending, fields, result.payer);
      return {
        result: pendingAnswer(
          pending,
          network,
          result.payer,
          `its receipt did not arrive within ${receiptTimeoutMs} ms`,
        ),
        repeated: false,
      };
    }
    return { result, repeated: false };
  };
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks });
  // The exact-EVM scheme submits a buyer's EIP-2612 permit with a Permit2 payment; advertising the
  // extension in /supported is what lets gateways declare it in their 402s.
  facilitator.registerExtension(EIP2612_GAS_SPONSORING);
  facilitator.register(networks, new UptoEvmScheme(signer));
  // batch-settlement (channels): deposits, batched voucher claims, settlement to the receiver and
  // cooperative refunds. The facilitator's key is also the channels' receiver authorizer (it signs
  // claim batches and refunds, and /supported advertises it as `receiverAuthorizer`), so sellers
  // need no key of their own; this facilitator is the seller's own, reachable inside its cluster.
  facilitator.register(
    networks,
    new BatchSettlementEvmScheme(signer, {
      address: account.address,
      signTypedData: (args) =>
        account.signTypedData(args as unknown as Parameters<typeof account.signTypedData>[0]),
    }),
  );

  const server = http.createServer(async (req, res) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && (path === "/healthz" || path === "/readyz"))
        return sendJson(res, 200, { ok: true });
      if (req.method === "GET" && path === "/supported")
        return sendJson(res, 200, facilitator.getSupported());
      if (req.method === "GET" && path === "/metrics" && metrics) return serveMetrics(res, metrics);
      if (req.method === "POST" && (path === "/verify" || path === "/settle")) {
        if (opts.accessToken !== undefined && !presentsToken(req.headers.authorization, opts.accessToken)) {
          const op = path.slice(1);
          metrics?.requests.inc({ op, network: "", outcome: "refused", reason: "unauthorized" });
          log(`facilitator: refused a ${op} without the access token`, {
            level: "warn",
            requestId: requestIdFrom(req.headers[REQUEST_ID_HEADER]),
            remote: req.socket.remoteAddress,
            authorization: req.headers.authorization === undefined ? "absent" : "wrong",
          });
          res.setHeader("WWW-Authenticate", 'Bearer realm="x402-facilitator"');
          return sendJson(res, 401, {
            error: `${op} needs the facilitator's access token (Authorization: Bearer <token>), which only the gateway of this stack holds`,
          });
        }
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
          if (op === "settle") {
            let callerGone = false;
            res.once("close", () => {
              callerGone = !res.writableFinished;
            });
            const { result, repeated } = await settle(body.paymentPayload, requirements, key, fields);
            // A success the caller did not wait for (its own timeout) is remembered, so its retry
            // learns the truth; one it received is not: a second settle of it must be refused.
            if (key && !repeated && result.success && result.transaction && (callerGone || res.destroyed))
              submitted.record(key, result.transaction as Hex, "settled", result.payer);
            end?.();
            recordOutcome(op, fields, result, repeated);
            return sendJson(res, 200, result);
          }
          const missing = await missingPermit2Contract(body.paymentPayload);
          const result = missing
            ? refusal(path, body.paymentPayload, missing)
            : await facilitator.verify(body.paymentPayload, requirements);
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
      const message = errorMessage(err);
      sendJson(res, (err as { status?: number }).status ?? 500, { error: message });
    }
  });
  type Fields = { requestId: string; network: string; asset: string; amount: bigint };
  type Outcome = {
    isValid?: boolean | undefined;
    invalidReason?: string | undefined;
    success?: boolean | undefined;
    errorReason?: string | undefined;
    transaction?: string | undefined;
    payer?: string | undefined;
  };
  const recordOutcome = (op: "verify" | "settle", fields: Fields, r: Outcome, repeated = false) => {
    const ok = op === "verify" ? r.isValid === true : r.success === true;
    const reason = (op === "verify" ? r.invalidReason : r.errorReason) ?? "";
    const outcome = op === "verify" ? (ok ? "valid" : "invalid") : ok ? "settled" : "failed";
    metrics?.requests.inc({ op, network: fields.network, outcome, reason: ok ? "" : reason });
    if (repeated) {
      // Counted (amount, gas, log) when it was first settled, or when its pending transaction was mined.
      log("facilitator: settle of an authorization already submitted, answered from its transaction", {
        ...fields,
        payer: r.payer,
        transaction: r.transaction,
        outcome: ok ? "settled" : reason,
      });
    } else if (op === "settle" && reason === "settlement_pending") {
      log("facilitator: settlement pending; following its transaction", {
        ...fields,
        level: "warn",
        payer: r.payer,
        transaction: r.transaction,
      });
    } else if (op === "settle" && ok) {
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
