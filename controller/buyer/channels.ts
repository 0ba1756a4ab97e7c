/**
 * The buyer's payment channels (x402 `batch-settlement`), around @x402/evm's client part:
 *
 *   - the library's channel records live in the spend ledger (LedgerChannelStorage), so a
 *     restarted buyer continues each channel from what it last signed and was charged;
 *   - a deposit is budgeted as a payment (server.ts reserves it from the library's deposit
 *     strategy, sized by spec.channels.deposit within the budget), its EIP-3009 authorization recorded so the chain
 *     can say whether it was used (depositAuthorization);
 *   - a refund is seen on chain (the channel's balance drops below what was deposited): the
 *     ledger gets the money back and the library's record is brought to the chain's state
 *     (ChannelReconciler), so the next call tops up instead of signing beyond the balance.
 */
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import {
  type BatchSettlementClientContext,
  type ClientChannelStorage,
  readChannelBalanceAndTotalClaimed,
} from "@x402/evm/batch-settlement/client";
import {
  type Address,
  encodeAbiParameters,
  getAddress,
  type Hex,
  isAddress,
  isHex,
  keccak256,
  type LocalAccount,
} from "viem";
import { errorMessage } from "../shared/log";
import { repeatEvery } from "../shared/repeat";
import type { PaymentAuthorization } from "./authorization";
import type { ChannelConfigRecord, ChannelContext, ChannelSummary, SpendLedger } from "./ledger";
import { RpcClients } from "./rpcClients";

export const BATCH_SETTLEMENT = "batch-settlement";

/**
 * The x402 batch-settlement client's channel storage, kept in the durable spend ledger.
 *
 * A deposit sent without an answer (the connection dropped, the buyer died) may be on chain
 * while the library's record never counted it: the library would then deposit again. While the
 * ledger holds such an unconfirmed deposit, the record's balance is read from the chain
 * (`chainBalance`) when a request first reads it, before it deposits anything itself: one
 * instance per request, under the purchase's lock, so no other deposit is in flight.
 */
export class LedgerChannelStorage implements ClientChannelStorage {
  private checked = false;

  constructor(
    private readonly ledger: SpendLedger,
    private readonly chainBalance?: (channel: Hex) => Promise<bigint>,
  ) {}

  async get(key: string): Promise<BatchSettlementClientContext | undefined> {
    const context = this.ledger.channelContext(key);
    const first = !this.checked;
    this.checked = true;
    if (!first || !context || !this.chainBalance) return context;
    const pending = this.ledger.channelSummaries().find((c) => c.channel === key.toLowerCase())?.pending;
    if (!pending) return context;
    const next = withChainBalance(context, await this.chainBalance(key as Hex));
    if (next !== context) this.ledger.setChannelContext(key, next);
    return next;
  }

  async set(key: string, context: BatchSettlementClientContext): Promise<void> {
    this.ledger.setChannelContext(key, context as ChannelContext);
  }

  async delete(key: string): Promise<void> {
    this.ledger.setChannelContext(key, null);
  }
}

/** The record with the chain's balance when the chain holds more (a deposit it never counted). Pure. */
export function withChainBalance(context: ChannelContext, chainBalance: bigint): ChannelContext {
  return chainBalance > BigInt(context.balance ?? "0")
    ? { ...context, balance: chainBalance.toString() }
    : context;
}

/** What a batch-settlement payment payload is, for the ledger. Pure. */
export function channelPaymentOf(payload: unknown):
  | {
      type: "deposit" | "voucher";
      channel: Hex;
      cumulative: bigint;
      deposit?: { amount: bigint; validBefore: string; salt: Hex };
      /** The channel's configuration, when the payload carries it (a deposit does). */
      config?: ChannelConfigRecord;
    }
  | undefined {
  const p = payload as
    | {
        type?: string;
        channelConfig?: unknown;
        voucher?: { channelId?: string; maxClaimableAmount?: string };
        deposit?: {
          amount?: string;
          authorization?: { erc3009Authorization?: { validBefore?: string; salt?: string } };
        };
      }
    | undefined;
  const channel = p?.voucher?.channelId;
  const cumulative = p?.voucher?.maxClaimableAmount;
  if ((p?.type !== "deposit" && p?.type !== "voucher") || !channel || !cumulative) return undefined;
  const auth = p.deposit?.authorization?.erc3009Authorization;
  const config = channelConfigOf(p.channelConfig);
  return {
    type: p.type,
    channel: channel as Hex,
    cumulative: BigInt(cumulative),
    ...(config ? { config } : {}),
    ...(p.type === "deposit" && p.deposit?.amount && auth?.validBefore && auth.salt
      ? {
          deposit: {
            amount: BigInt(p.deposit.amount),
            validBefore: auth.validBefore,
            salt: auth.salt as Hex,
          },
        }
      : {}),
  };
}

/** A payload's `channelConfig`, when it has every field of one. Pure. */
export function channelConfigOf(value: unknown): ChannelConfigRecord | undefined {
  const c = value as Partial<Record<keyof ChannelConfigRecord, unknown>> | undefined;
  if (!c || typeof c !== "object") return undefined;
  const addresses = ["payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token"] as const;
  if (!addresses.every((k) => typeof c[k] === "string" && isAddress(c[k] as string, { strict: false })))
    return undefined;
  const delay = Number(c.withdrawDelay);
  if (!Number.isSafeInteger(delay) || delay < 0) return undefined;
  if (typeof c.salt !== "string" || !isHex(c.salt) || c.salt.length !== 66) return undefined;
  const address = (k: (typeof addresses)[number]) => getAddress(c[k] as string);
  return {
    payer: address("payer"),
    payerAuthorizer: address("payerAuthorizer"),
    receiver: address("receiver"),
    receiverAuthorizer: address("receiverAuthorizer"),
    token: address("token"),
    withdrawDelay: delay,
    salt: c.salt,
  };
}

/**
 * The EIP-3009 authorization a deposit signs (receiveWithAuthorization to the deposit
 * collector), by the token's authorization state that records its use. The nonce binds the
 * channel and the payload's salt, the way the library's deposit payload and the contract derive
 * it (the library does not export that helper).
 */
export function depositAuthorization(
  buyer: Address,
  requirements: Pick<PaymentRequirements, "network" | "asset">,
  deposit: { validBefore: string; salt: Hex },
  channel: Hex,
): PaymentAuthorization {
  return {
    kind: "eip3009",
    network: requirements.network,
    token: getAddress(requirements.asset),
    from: getAddress(buyer),
    nonce: keccak256(
      encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [channel, BigInt(deposit.salt)]),
    ),
    validBefore: deposit.validBefore,
  };
}

/**
 * What came back from a channel, given its balance on chain. Pure.
 *
 * The contract's balance is what was deposited less what was refunded or withdrawn (claims do
 * not lower it), so deposits the ledger saw settle, less what it recorded as back, above the
 * chain's balance, came back to the wallet: a seller's refund or the buyer's own withdrawal
 * (withdrawals.ts), counted alike. Deposits still unconfirmed are
 * left out (the chain may or may not hold them): the refund is then under-counted until they
 * settle, never over-counted.
 */
export function refundSeen(
  channel: Pick<ChannelSummary, "deposited" | "refunded">,
  chainBalance: bigint,
): bigint {
  const gone = channel.deposited - channel.refunded - chainBalance;
  return gone > 0n ? gone : 0n;
}

/**
 * The library's record brought to the chain after a refund: the balance is the chain's, and the
 * charged amount is never below what was claimed (a voucher below it would be refused).
 */
export function contextAfterRefund(
  local: ChannelContext | undefined,
  chain: { balance: bigint; totalClaimed: bigint },
): ChannelContext {
  const charged = BigInt(local?.chargedCumulativeAmount ?? "0");
  return {
    ...local,
    chargedCumulativeAmount: (charged > chain.totalClaimed ? charged : chain.totalClaimed).toString(),
    balance: chain.balance.toString(),
    totalClaimed: chain.totalClaimed.toString(),
  };
}

/** One task at a time per key (a purchase's channel payments and their reconciliation). */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export interface ChannelReconcilerOptions {
  ledger: SpendLedger;
  account: LocalAccount;
  /** The RPC URL of a purchase (by PurchaseRequest name), if it names one. */
  rpcUrlFor(purchase: string): string | undefined;
  lock: KeyedLock;
  log(message: string): void;
  /** Called after a refund of `purchase` was recorded, to publish its status. */
  onRefund?(purchase: string): void;
}

/** Reads the channels' balances on chain and records the refunds they show. */
export class ChannelReconciler {
  private readonly clients = new RpcClients();
  private stopTimer: (() => void) | undefined;

  constructor(private readonly opts: ChannelReconcilerOptions) {}

  /** The channel's balance on chain, for a purchase with an RPC URL. */
  chainBalanceReader(rpcUrl: string | undefined): ((channel: Hex) => Promise<bigint>) | undefined {
    if (!rpcUrl) return undefined;
    const signer = this.signerFor(rpcUrl);
    return async (channel) => (await readChannelBalanceAndTotalClaimed(signer, channel))[0];
  }

  /** A signer that can read the chain, for the library's channel recovery. */
  signerFor(rpcUrl: string | undefined) {
    return rpcUrl ? toClientEvmSigner(this.opts.account, this.clients.get(rpcUrl)) : this.opts.account;
  }

  /**
   * Compares one channel with the chain; returns whether a refund was found (and recorded). The
   * caller holds the purchase's lock.
   */
  async reconcile(channel: string): Promise<boolean> {
    const summary = this.opts.ledger.channelSummaries().find((c) => c.channel === channel.toLowerCase());
    if (!summary) return false;
    const rpcUrl = this.opts.rpcUrlFor(summary.purchase);
    if (!rpcUrl) return false;
    const [balance, totalClaimed] = await readChannelBalanceAndTotalClaimed(
      this.signerFor(rpcUrl),
      summary.channel as Hex,
    );
    const refund = refundSeen(summary, balance);
    if (refund === 0n) return false;
    this.opts.ledger.refunded(summary.channel, summary.purchase, refund);
    this.opts.ledger.setChannelContext(
      summary.channel,
      contextAfterRefund(this.opts.ledger.channelContext(summary.channel), { balance, totalClaimed }),
    );
    this.opts.log(
      `buyer: ${refund} atomic units of channel ${summary.channel} (${summary.purchase}) came back to the wallet`,
    );
    this.opts.onRefund?.(summary.purchase);
    return true;
  }

  /** Every channel with deposited money not yet refunded, each under its purchase's lock. */
  async reconcileAll(): Promise<void> {
    for (const c of this.opts.ledger.channelSummaries()) {
      if (c.deposited + c.pending - c.refunded <= 0n) continue;
      try {
        await this.opts.lock.run(c.purchase, () => this.reconcile(c.channel));
      } catch (err) {
        this.opts.log(`buyer: cannot read channel ${c.channel} of ${c.purchase}: ${errorMessage(err)}`);
      }
    }
  }

  start(intervalMs: number): void {
    this.stopTimer = repeatEvery(intervalMs, () => this.reconcileAll());
  }

  stop(): void {
    this.stopTimer?.();
  }
}
