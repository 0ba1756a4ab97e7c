/**
 * The buyer proxy: the OpenAI-compatible upstream behind LiteLLM's static `paid/*` route.
 * A request for model `paid/<m>` (or `<m>`) is matched to the PurchaseRequest whose spec.model
 * is `<m>`, sent to that seller's endpoint, and paid with @x402/fetch when the seller answers
 * 402 — only if the price fits the purchase's budget, which the durable ledger enforces across
 * restarts. The seller's response (including SSE streams) is piped back unbuffered.
 */
import { randomUUID } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { appendPaymentIdentifierToExtensions, generatePaymentId } from "@x402/extensions/payment-identifier";
import { wrapFetchWithPayment } from "@x402/fetch";
import type { LocalAccount } from "viem";
import { fromAtomic, toAtomic } from "../../api/money";
import type { PurchaseRequestSpec } from "../../api/resources";
import { readOffered, termsMismatch } from "../payments/purchaseTerms";
import type { AgentResolution } from "../shared/agentResolver";
import { readJsonBody, sendJson } from "../shared/http";
import { errorMessage, type LogFn, REQUEST_ID_HEADER, requestIdFrom } from "../shared/log";
import { serveMetrics } from "../shared/metrics";
import { authorizationOf } from "./authorization";
import { channelDeposit, checkBudget } from "./budget";
import {
  BATCH_SETTLEMENT,
  type ChannelReconciler,
  channelPaymentOf,
  depositAuthorization,
  type KeyedLock,
  LedgerChannelStorage,
} from "./channels";
import type { SpendLedger } from "./ledger";
import type { BuyerMetrics } from "./metrics";
import { retryingPaidFetch } from "./paidRetry";
import type { SpendRecovery } from "./recovery";
import { announcesTrailer, fetchKeepingTrailers, trailersOf } from "./trailerFetch";
import type { UnconfirmedPayments } from "./unconfirmed";
import { secondsUntilFinal } from "./withdrawals";

export const BUYER_USER_AGENT = "obol-stack-buyer/0.1";
const MAX_REQUEST_BYTES = 4 << 20;
const FORWARDED_PATHS = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
]);

export interface Purchase {
  readonly name: string;
  readonly spec: PurchaseRequestSpec;
}

export interface BuyerOptions {
  account: LocalAccount;
  ledger: SpendLedger;
  /** The purchase for a model name (without the `paid/` prefix), from the PurchaseRequest watch. */
  purchaseFor(model: string): Purchase | undefined;
  /** Called after each paid or refused request, to publish spend counters. */
  onSpend?(purchase: Purchase): void;
  /** Where the purchase's seller is: spec.endpoint, or where spec.agent resolves to. */
  sellerFor(purchase: Purchase): Promise<AgentResolution>;
  /** Brings spend the ledger lost back from the chain before a budget decision. */
  recovery?: SpendRecovery;
  /** Follows payments sent without a successful receipt to their on-chain outcome. */
  unconfirmed?: UnconfirmedPayments;
  /**
   * Payment channels (purchases with spec.channels): the chain reader that sees refunds, and the
   * per-purchase lock that keeps one channel payment in flight at a time (a seller refuses a
   * second voucher while one is pending: "channel busy").
   */
  channels?: { reconciler: ChannelReconciler; lock: KeyedLock };
  log: LogFn;
  /** Served at /metrics when set (the buyer's port is in-cluster only). */
  metrics?: BuyerMetrics;
  port?: number;
  host?: string;
}

export interface RunningBuyer {
  readonly url: string;
  close(): Promise<void>;
}

export function startBuyer(opts: BuyerOptions): Promise<RunningBuyer> {
  return listen(
    (req, res) => {
      handle(opts, req, res).catch((err) => {
        opts.log(`buyer: ${errorMessage(err)}`, {
          level: "error",
          requestId: res.getHeader(REQUEST_ID_HEADER),
        });
        if (!res.headersSent)
          sendJson(res, 502, { error: { type: "buyer_error", message: errorMessage(err) } });
        else res.destroy();
      });
    },
    opts.port,
    opts.host,
  );
}

/** What an agent is told when it calls `paid/<model>` on a stack that has no buyer wallet. */
export const NO_WALLET_MESSAGE =
  "this stack buys nothing: it has no buyerSignerKey. To pay sellers, declare purchases[] and set the key with `pulumi config set --secret buyerSignerKey <0x...>`";

/**
 * The buyer of a stack without a wallet (one that only sells): healthy, so its Deployment is
 * Ready and `pulumi up` completes, and every paid call is refused with the reason, nothing signed.
 */
export function startWalletlessBuyer(opts: { port?: number; host?: string } = {}): Promise<RunningBuyer> {
  return listen(
    (req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      if (req.method === "GET" && (path === "/healthz" || path === "/readyz"))
        return sendJson(res, 200, { ok: true, wallet: false });
      sendJson(res, 503, { error: { type: "buyer_not_configured", message: NO_WALLET_MESSAGE } });
    },
    opts.port,
    opts.host,
  );
}

function listen(
  handler: http.RequestListener,
  port: number | undefined,
  host: string | undefined,
): Promise<RunningBuyer> {
  const server = http.createServer(handler);
  return new Promise((resolve) => {
    server.listen(port ?? 0, host ?? "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://${host ?? "127.0.0.1"}:${port}`,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

async function handle(
  opts: BuyerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0] ?? "/";
  if (req.method === "GET" && (path === "/healthz" || path === "/readyz"))
    return sendJson(res, 200, { ok: true });
  if (req.method === "GET" && path === "/metrics" && opts.metrics) return serveMetrics(res, opts.metrics);
  // Carried to the seller (whose gateway logs it with the settlement) and back to the agent.
  const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
  res.setHeader(REQUEST_ID_HEADER, requestId);
  const started = process.hrtime.bigint();
  if (req.method !== "POST" || !FORWARDED_PATHS.has(path)) {
    return sendJson(res, 404, {
      error: { type: "not_found", message: `POST one of ${[...FORWARDED_PATHS].join(", ")}` },
    });
  }
  const body = (await readJsonBody(req, MAX_REQUEST_BYTES)) as { model?: unknown };
  const requested = typeof body?.model === "string" ? body.model.replace(/^paid\//, "") : "";
  const purchase = opts.purchaseFor(requested);
  if (!purchase) {
    return sendJson(res, 404, {
      error: { type: "unknown_model", message: `no PurchaseRequest for model "${requested}"` },
    });
  }

  const call = { path, body, purchase, requestId, started };
  const channels = purchase.spec.channels !== undefined ? opts.channels : undefined;
  // A channel takes one voucher at a time: the next call of the purchase waits for this one's
  // answer head (pay returns then; the body streams on), when the seller committed or dropped it.
  if (channels) return channels.lock.run(purchase.name, () => pay(opts, req, res, call));
  return pay(opts, req, res, call);
}

async function pay(
  opts: BuyerOptions,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  call: { path: string; body: { model?: unknown }; purchase: Purchase; requestId: string; started: bigint },
): Promise<void> {
  const { path, body, purchase, requestId, started } = call;
  // One client per request: its hook sees the seller's price before anything is signed.
  const metrics = opts.metrics;
  const count = (outcome: string, reason = "") => {
    metrics?.payments.inc({ purchase: purchase.name, outcome, reason });
    metrics?.duration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
  };

  const withdrawing =
    purchase.spec.channels !== undefined ? opts.ledger.pendingWithdrawal(purchase.name) : undefined;
  if (withdrawing) {
    // A voucher signed now could exceed what the seller can claim once the withdrawal is final.
    count("refused", "channel_withdrawing");
    const wait = secondsUntilFinal(withdrawing.withdrawal, withdrawing.config.withdrawDelay, Date.now());
    res.setHeader("retry-after", String(wait));
    return sendJson(res, 503, {
      error: {
        type: "channel_withdrawing",
        message: `the buyer is withdrawing the unused deposit of channel ${withdrawing.channel} (${withdrawing.withdrawal.tx}), final in about ${wait} s; calls of ${purchase.name} resume after it (nothing was signed)`,
      },
    });
  }
  const seller = await opts.sellerFor(purchase);
  if (!seller.ok) {
    // Nothing is signed for a seller whose identity does not check out.
    count("refused", seller.reason);
    opts.log("buyer: seller not resolved", {
      level: "warn",
      requestId,
      purchase: purchase.name,
      reason: seller.reason,
    });
    return sendJson(res, 502, {
      error: { type: "seller_not_resolved", code: seller.reason, message: seller.message },
    });
  }
  let offered: { network: string; asset: string; amount: bigint } | undefined;
  let refusal: { status: number; reason: string; message: string } | undefined;
  /** This request's payments: reserved before signing, then recorded once signed. */
  const payments: { id: string; signed: boolean }[] = [];
  const client = new x402Client();
  // With an RPC the client can see a missing Permit2 allowance and sign an EIP-2612 permit instead.
  const rpcUrl = purchase.spec.payment.rpcUrl;
  registerExactEvmScheme(client, { signer: opts.account, ...(rpcUrl ? { schemeOptions: { rpcUrl } } : {}) });
  // upto: the buyer signs the seller's maximum (reserved against the budget) and pays what the
  // seller settles, which its receipt's `amount` says.
  client.register("eip155:*", new UptoEvmScheme(opts.account, rpcUrl ? { rpcUrl } : undefined));
  client.setSpendControls(false); // the budget below is the spend control
  /** This request's channel payment (batch-settlement), once signed. */
  let channelPayment: ReturnType<typeof channelPaymentOf>;
  const channels = purchase.spec.channels !== undefined ? opts.channels : undefined;
  if (channels) {
    // The library keeps its channel records in the ledger and asks us how much to deposit: the
    // deposit is what the budget counts, so it is sized within what the budget leaves and
    // reserved (durably) before the library signs it.
    client.register(
      "eip155:*",
      new BatchSettlementEvmScheme(channels.reconciler.signerFor(rpcUrl), {
        storage: new LedgerChannelStorage(opts.ledger, channels.reconciler.chainBalanceReader(rpcUrl)),
        depositStrategy: (ctx) => {
          const decision = channelDeposit(
            purchase.spec,
            { needed: BigInt(ctx.minimumDepositAmount), price: BigInt(ctx.requestAmount) },
            opts.ledger.spend(purchase.name),
          );
          if (!decision.ok) {
            refusal = { status: 402, reason: decision.reason, message: decision.message };
            throw new Error(decision.message);
          }
          const id = randomUUID();
          opts.ledger.reserve(id, purchase.name, decision.amount, Date.now(), ctx.channelId);
          payments.push({ id, signed: false });
          return decision.amount;
        },
      }),
    );
  }
  // Only options on the purchase's terms are candidates (v1 sellers name networks the v1 way;
  // readOffered normalizes them). When none fits, the first is kept so the hook below refuses
  // it with the precise reason.
  client.registerPolicy((_version, accepts) => {
    const payable = accepts.filter((r) => {
      const offered = readOffered(r);
      return offered !== undefined && termsMismatch(purchase.spec.payment, offered, !!channels) === undefined;
    });
    if (payable.length === 0) return accepts.slice(0, 1);
    const limit = [purchase.spec.payment.maxPrice, purchase.spec.budget.maxPerRequest]
      .map((v) => toAtomic(v, purchase.spec.payment.decimals))
      .reduce((a, b) => (a < b ? a : b));
    const within = (scheme: string) =>
      payable.filter((r) => r.scheme === scheme && (readOffered(r)?.amountAtomic ?? limit + 1n) <= limit);
    // A channel pays a call with a signature and no transaction: preferred when the purchase
    // allows it. upto charges what is used, never more than its maximum: next, when that maximum
    // fits the per-request limits (it is what the budget reserves).
    const channel = within(BATCH_SETTLEMENT);
    if (channel.length > 0) return channel;
    const upto = within("upto");
    return upto.length > 0
      ? upto
      : payable.filter((r) => r.scheme !== "upto" && r.scheme !== BATCH_SETTLEMENT).concat(upto);
  });
  // One identifier for this request's payment: a retry after a lost answer is not paid twice.
  const paymentId = generatePaymentId();
  client.onBeforePaymentCreation(async ({ paymentRequired, selectedRequirements }) => {
    // Added only when the seller declared payment-identifier; echoed into the signed payload.
    if (paymentRequired.extensions)
      appendPaymentIdentifierToExtensions(paymentRequired.extensions, paymentId);
    const terms = readOffered(selectedRequirements);
    if (!terms) {
      refusal = {
        status: 402,
        reason: "malformed_requirements",
        message: "the seller's payment requirements are unreadable",
      };
      return { abort: true, reason: refusal.message };
    }
    offered = { network: terms.caip2 ?? terms.network, asset: terms.asset, amount: terms.amountAtomic };
    const mismatch = termsMismatch(purchase.spec.payment, terms, !!channels);
    const isChannel = selectedRequirements.scheme === BATCH_SETTLEMENT;
    if (!mismatch) {
      try {
        await opts.recovery?.ensure(purchase, terms.payTo, terms.asset);
      } catch (err) {
        // Without the earlier spend the budget cannot be checked: refuse rather than re-spend.
        refusal = {
          status: 503,
          reason: "spend_unknown",
          message: `the earlier spend of ${purchase.name} could not be read from the chain, so its budget cannot be checked: ${errorMessage(err)}`,
        };
        return { abort: true, reason: refusal.message };
      }
    }
    // A channel call checks the price here; its deposit (if it needs one) is checked against the
    // budget's totals when the library sizes it.
    const decision = mismatch
      ? { ok: false, reason: mismatch.reason, message: mismatch.message }
      : checkBudget(purchase.spec, offered, opts.ledger.spend(purchase.name), { totals: !isChannel });
    if (!decision.ok) {
      refusal = { status: 402, reason: decision.reason!, message: decision.message! };
      return { abort: true, reason: decision.message! };
    }
    if (isChannel) return undefined;
    const amount = terms.amountAtomic;
    // Durable before the signature exists: a crash from here on counts the payment as spent.
    const id = randomUUID();
    opts.ledger.reserve(id, purchase.name, amount);
    payments.push({ id, signed: false });
    return undefined;
  });
  client.onAfterPaymentCreation(async ({ paymentPayload, selectedRequirements }) => {
    if (selectedRequirements.scheme === BATCH_SETTLEMENT) {
      channelPayment = channelPaymentOf(paymentPayload.payload);
      if (!channelPayment) return;
      // Durable before the voucher leaves the process: a restart continues from here.
      opts.ledger.voucherSigned(channelPayment.channel, purchase.name, channelPayment.cumulative);
      // What the buyer needs to withdraw the channel itself should the seller stop refunding.
      if (channelPayment.config)
        opts.ledger.channelConfigured(channelPayment.channel, purchase.name, channelPayment.config);
      const deposit = payments.at(-1);
      if (!deposit || deposit.signed || !channelPayment.deposit) return;
      opts.ledger.authorize(
        deposit.id,
        depositAuthorization(
          opts.account.address,
          selectedRequirements,
          channelPayment.deposit,
          channelPayment.channel,
        ),
      );
      deposit.signed = true;
      return;
    }
    const payment = payments.at(-1);
    if (!payment) return;
    // Durable before the authorization leaves the process: what the chain can be asked about.
    const authorization = authorizationOf(paymentPayload, selectedRequirements);
    if (authorization) opts.ledger.authorize(payment.id, authorization);
    payment.signed = true;
  });
  const paidFetch = wrapFetchWithPayment(retryingPaidFetch(fetchKeepingTrailers, { log: opts.log }), client);
  const target = `${seller.endpoint.replace(/\/+$/, "")}${path}`;
  const send = () =>
    paidFetch(target, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": BUYER_USER_AGENT,
        [REQUEST_ID_HEADER]: requestId,
        accept: String(req.headers.accept ?? "*/*"),
      },
      body: JSON.stringify({ ...body, model: purchase.spec.model }),
    });
  let upstream: Response;
  try {
    upstream = await send();
    // A voucher the seller refuses may be on a channel it refunded meanwhile (its balance is now
    // below the voucher): once the chain shows the refund, the call is paid again with a top-up.
    const voucher = channelPayment?.type === "voucher" ? channelPayment.channel : undefined;
    if (
      upstream.status === 402 &&
      voucher &&
      (await channels?.reconciler.reconcile(voucher).catch(() => false))
    ) {
      await upstream.body?.cancel();
      opts.onSpend?.(purchase);
      upstream = await send();
    }
  } catch (err) {
    // Only a payment that was never signed is certainly unspent; a sent one may be settled by
    // the seller whatever happened to this connection.
    for (const p of payments) if (!p.signed) opts.ledger.release(p.id);
    if (payments.some((p) => p.signed)) opts.unconfirmed?.resolve().catch(() => undefined);
    opts.onSpend?.(purchase);
    if (refusal) {
      count("refused", refusal.reason);
      opts.log("buyer: payment refused", {
        requestId,
        purchase: purchase.name,
        reason: refusal.reason,
      });
      return sendJson(res, refusal.status, { error: { type: refusal.reason, message: refusal.message } });
    }
    count("seller_unreachable");
    opts.log("buyer: seller unreachable", { level: "warn", requestId, purchase: purchase.name, error: err });
    return sendJson(res, 502, {
      error: {
        type: "seller_unreachable",
        message: `${target}: ${errorMessage(err)}`,
      },
    });
  }

  // A streamed upto answer is settled at its end: its receipt is the PAYMENT-RESPONSE trailer.
  const receiptFollows = !readReceipt(upstream.headers) && announcesTrailer(upstream, "payment-response");
  const record = (receipt: Receipt | undefined) =>
    recordOutcome(opts, {
      purchase,
      requestId,
      payments,
      offered,
      status: upstream.status,
      receipt,
      count,
      channel: channelPayment,
    });
  if (!receiptFollows) record(readReceipt(upstream.headers));

  const headers: Record<string, string> = {};
  upstream.headers.forEach((value, key) => {
    if (!["content-length", "transfer-encoding", "connection", "content-encoding", "trailer"].includes(key))
      headers[key] = value;
  });
  res.writeHead(upstream.status, headers);
  if (!upstream.body) {
    if (receiptFollows) record(undefined);
    return void res.end();
  }
  const answer = Readable.fromWeb(upstream.body as import("node:stream/web").ReadableStream);
  answer.pipe(res);
  if (!receiptFollows) return;
  await finished(answer).catch(() => undefined);
  const trailers = (await trailersOf(upstream)) ?? {};
  record(readReceipt(new Headers(trailers)));
}

type Receipt = {
  success: boolean;
  transaction: string;
  amount?: string | undefined;
  extra?: Record<string, unknown> | undefined;
};

/** What a batch-settlement receipt says the call was charged (`extra.chargedAmount`). */
function chargedOf(receipt: Receipt | undefined): bigint | undefined {
  const amount = receipt?.extra?.chargedAmount;
  return typeof amount === "string" && /^[0-9]{1,78}$/.test(amount) ? BigInt(amount) : undefined;
}

function readReceipt(headers: Headers): Receipt | undefined {
  const header = headers.get("payment-response") ?? headers.get("x-payment-response");
  return header ? safeDecode(header) : undefined;
}

/**
 * Puts the seller's answer to this request's payments in the ledger, metrics and log: the last
 * signed payment is settled when a successful receipt names it, the unsigned ones are released,
 * and a signed one without a receipt stays spent until the chain says otherwise.
 */
function recordOutcome(
  opts: BuyerOptions,
  call: {
    purchase: Purchase;
    requestId: string;
    payments: readonly { id: string; signed: boolean }[];
    offered: { network: string; asset: string; amount: bigint } | undefined;
    status: number;
    receipt: Receipt | undefined;
    count(outcome: string, reason?: string): void;
    /** The channel payment sent, if the call was paid by batch-settlement. */
    channel: ReturnType<typeof channelPaymentOf>;
  },
): void {
  const { purchase, requestId, payments, offered, receipt, count, channel } = call;
  const metrics = opts.metrics;
  const last = payments.at(-1);
  const paid = (last?.signed === true || channel !== undefined) && receipt?.success === true;
  // An upto receipt names the settled amount (at most the signed maximum, which was reserved);
  // a channel's receipt names what the call was charged (its deposit settled whole).
  const charged = channel ? chargedOf(receipt) : undefined;
  const settledAmount = offered && receipt && !channel ? settledOf(receipt, offered.amount) : undefined;
  for (const p of payments) {
    if (!p.signed) opts.ledger.release(p.id);
    else if (p === last && receipt?.success)
      opts.ledger.settle(p.id, receipt.transaction, Date.now(), settledAmount);
  }
  // A signed payment without a successful receipt is the seller's word only: it stays counted as
  // spent until the chain says it was used or can no longer be.
  const unconfirmed = payments.some((p) => p.signed && !(p === last && receipt?.success));
  if (unconfirmed) opts.unconfirmed?.resolve().catch(() => undefined);
  opts.onSpend?.(purchase);
  if (paid && receipt && offered) {
    const spent = opts.ledger.spend(purchase.name);
    count("paid");
    metrics?.paid.inc(
      { purchase: purchase.name, network: offered.network, asset: offered.asset },
      Number(charged ?? settledAmount ?? offered.amount),
    );
    opts.log("buyer: paid", {
      requestId,
      purchase: purchase.name,
      network: offered.network,
      asset: offered.asset,
      amount: charged ?? settledAmount ?? offered.amount,
      ...(settledAmount !== undefined ? { signedMaximum: offered.amount } : {}),
      ...(channel
        ? { channel: channel.channel, cumulative: channel.cumulative, deposit: channel.deposit?.amount }
        : {}),
      transaction: receipt.transaction,
      spentTotal: spent.total,
    });
  } else if (unconfirmed) {
    count("unconfirmed", call.status === 402 ? "seller_refused" : `status_${call.status}`);
    opts.log("buyer: payment sent without a receipt; counted as spent until the chain says otherwise", {
      level: "warn",
      requestId,
      purchase: purchase.name,
      status: call.status,
    });
  } else {
    count("not_charged", call.status === 402 ? "seller_refused" : `status_${call.status}`);
  }
}

/** The amount a receipt says was settled, when it is a valid amount below the signed one. */
function settledOf(receipt: { amount?: string | undefined }, signed: bigint): bigint | undefined {
  if (typeof receipt.amount !== "string" || !/^[0-9]{1,78}$/.test(receipt.amount)) return undefined;
  const amount = BigInt(receipt.amount);
  return amount < signed ? amount : undefined;
}

function safeDecode(header: string): Receipt | undefined {
  try {
    return decodePaymentResponseHeader(header);
  } catch {
    return undefined;
  }
}

/** Spend counters for PurchaseRequest status, in token units. */
export function spendStatus(ledger: SpendLedger, purchase: Purchase) {
  const spend = ledger.spend(purchase.name);
  const decimals = purchase.spec.payment.decimals;
  const channels = ledger.channelSummaries(purchase.name);
  const sum = (f: (c: (typeof channels)[number]) => bigint) =>
    fromAtomic(
      channels.reduce((a, c) => a + f(c), 0n),
      decimals,
    );
  return {
    requests: spend.settledCount,
    spentToday: fromAtomic(spend.today, decimals),
    spentTotal: fromAtomic(spend.total, decimals),
    ...(channels.length > 0
      ? {
          channels: {
            deposited: sum((c) => c.deposited + c.pending),
            charged: sum((c) => c.charged),
            refunded: sum((c) => c.refunded),
            // Always written: the status is merge-patched, so a field left out would stay.
            withdrawing: sum((c) => c.withdrawal?.amount ?? 0n),
          },
        }
      : {}),
  };
}
