/**
 * The buyer's own exit from a payment channel (x402 `batch-settlement`): when a channel has not
 * been used for `channels.withdrawAfterIdleSeconds` and still holds deposit the buyer has not
 * spent, the buyer withdraws it itself, for sellers that stopped refunding (gone, broken, or
 * slower than the buyer's patience). Two transactions from the buyer's wallet, which pays their
 * gas: `initiateWithdraw(config, amount)`, then, once the channel's `withdrawDelay` has passed
 * on chain, `finalizeWithdraw(config)`. The delay is the seller's window to claim the vouchers
 * it holds; the amount asked for leaves every voucher the buyer signed claimable.
 *
 * The money back is counted by the channel reconciler, which sees the balance drop like a
 * refund. While a withdrawal is pending the purchase's calls are refused (server.ts): a voucher
 * signed then could outrun the balance the seller will be able to claim from.
 */

import { BATCH_SETTLEMENT_ADDRESS, toClientEvmSigner } from "@x402/evm";
import { readChannelBalanceAndTotalClaimed } from "@x402/evm/batch-settlement/client";
import type { Hex, LocalAccount, PublicClient } from "viem";
import { createWalletClient, http, parseAbi } from "viem";
import { errorMessage } from "../shared/log";
import { repeatEvery } from "../shared/repeat";
import type { KeyedLock } from "./channels";
import type { ChannelConfigRecord, ChannelSummary, PendingWithdrawal, SpendLedger } from "./ledger";
import { RpcClients } from "./rpcClients";

/** The two withdrawal functions of x402's batch-settlement contract. */
const WITHDRAW_ABI = parseAbi([
  "function initiateWithdraw((address payer, address payerAuthorizer, address receiver, address receiverAuthorizer, address token, uint40 withdrawDelay, bytes32 salt) config, uint128 amount)",
  "function finalizeWithdraw((address payer, address payerAuthorizer, address receiver, address receiverAuthorizer, address token, uint40 withdrawDelay, bytes32 salt) config)",
]);

/** What to do about one channel now. */
export type WithdrawalStep =
  | { readonly kind: "none" }
  | { readonly kind: "initiate"; readonly amount: bigint }
  | { readonly kind: "wait"; readonly readyAt: number }
  | { readonly kind: "finalize" }
  /** A pending withdrawal with nothing left to take (a refund came meanwhile, or it was finalized before a crash). */
  | { readonly kind: "done" };

/**
 * The next withdrawal step of a channel. Pure.
 *
 * Unspent is the chain's balance less the most the seller can claim: every voucher the buyer
 * signed (`signed`, which a seller may hold even when its answer never came back) or what it
 * already claimed, whichever is more.
 */
export function withdrawalStep(input: {
  readonly channel: Pick<ChannelSummary, "signed" | "lastUsedAt" | "withdrawal">;
  readonly withdrawDelay: number;
  readonly chain: { readonly balance: bigint; readonly totalClaimed: bigint; readonly time: number };
  readonly idleSeconds: number;
  /** Wall-clock time (ms), against which the channel's last use is measured. */
  readonly now: number;
}): WithdrawalStep {
  const { channel, chain } = input;
  const owed = channel.signed > chain.totalClaimed ? channel.signed : chain.totalClaimed;
  const unspent = chain.balance - owed;
  if (channel.withdrawal) {
    // Finalizing takes up to the balance less what was *claimed*: with nothing unspent left, it
    // could only take vouchers the seller has not claimed yet.
    if (unspent <= 0n) return { kind: "done" };
    const readyAt = channel.withdrawal.initiatedAt + input.withdrawDelay;
    return chain.time >= readyAt ? { kind: "finalize" } : { kind: "wait", readyAt };
  }
  if (input.now - channel.lastUsedAt < input.idleSeconds * 1000) return { kind: "none" };
  return unspent > 0n ? { kind: "initiate", amount: unspent } : { kind: "none" };
}

/** Seconds until a pending withdrawal can be finalized, at `nowMs` (at least 1). Pure. */
export function secondsUntilFinal(
  withdrawal: PendingWithdrawal,
  withdrawDelay: number,
  nowMs: number,
): number {
  return Math.max(1, Math.ceil(withdrawal.initiatedAt + withdrawDelay - nowMs / 1000));
}

export interface WithdrawalTerms {
  readonly rpcUrl: string;
  readonly idleSeconds: number;
}

export interface ChannelWithdrawalsOptions {
  ledger: SpendLedger;
  account: LocalAccount;
  /** A purchase's withdrawal terms; undefined when it has no channels or no RPC URL. */
  termsFor(purchase: string): WithdrawalTerms | undefined;
  lock: KeyedLock;
  /** Reads the channel's balance on chain and records what came back (the reconciler's). */
  reconcile(channel: string): Promise<boolean>;
  log(message: string): void;
  /** Called after a step changed the purchase's channels (to publish its status). */
  onChange?(purchase: string): void;
  /** How long after a failed step (an RPC error, no gas) a channel is tried again (default 10 min). */
  retryAfterFailureMs?: number;
}

export class ChannelWithdrawals {
  private readonly clients = new RpcClients();
  /** Channels whose configuration is unknown, already logged once. */
  private readonly unknownConfig = new Set<string>();
  /** Channels whose last step failed, and when to try again (ms). */
  private readonly retryAt = new Map<string, number>();

  private stopTimer: (() => void) | undefined;

  constructor(private readonly opts: ChannelWithdrawalsOptions) {}

  /** Runs a pass every `intervalMs` (the first at once). */
  start(intervalMs: number): void {
    this.stopTimer = repeatEvery(intervalMs, () => this.runOnce());
  }

  stop(): void {
    this.stopTimer?.();
  }

  /** One pass over the channels with unspent deposit, each under its purchase's lock. */
  async runOnce(now = Date.now()): Promise<void> {
    for (const c of this.opts.ledger.channelSummaries()) {
      if (c.deposited + c.pending - c.refunded <= 0n && !c.withdrawal) continue;
      const terms = this.opts.termsFor(c.purchase);
      if (!terms) continue;
      if (!c.config) {
        if (!this.unknownConfig.has(c.channel)) {
          this.unknownConfig.add(c.channel);
          this.opts.log(
            `buyer: channel ${c.channel} (${c.purchase}) was opened before its configuration was recorded; it cannot be withdrawn by the buyer, only refunded by the seller`,
          );
        }
        continue;
      }
      const config = c.config;
      if ((this.retryAt.get(c.channel) ?? 0) > now) continue;
      try {
        await this.opts.lock.run(c.purchase, () => this.step(c.channel, config, terms, now));
        this.retryAt.delete(c.channel);
      } catch (err) {
        const retryMs = this.opts.retryAfterFailureMs ?? 600_000;
        this.retryAt.set(c.channel, now + retryMs);
        this.opts.log(
          `buyer: withdrawing channel ${c.channel} of ${c.purchase} failed (tried again in ${Math.round(retryMs / 1000)} s; the wallet pays gas for it): ${errorMessage(err)}`,
        );
      }
    }
  }

  private async step(channel: string, config: ChannelConfigRecord, terms: WithdrawalTerms, now: number) {
    // Read again under the lock: a call may have used the channel since the pass began.
    const summary = this.opts.ledger.channelSummaries().find((c) => c.channel === channel);
    if (!summary) return;
    const client = this.clients.get(terms.rpcUrl);
    const [[balance, totalClaimed], block] = await Promise.all([
      readChannelBalanceAndTotalClaimed(toClientEvmSigner(this.opts.account, client), channel as Hex),
      client.getBlock({ blockTag: "latest" }),
    ]);
    const next = withdrawalStep({
      channel: summary,
      withdrawDelay: config.withdrawDelay,
      chain: { balance, totalClaimed, time: Number(block.timestamp) },
      idleSeconds: terms.idleSeconds,
      now,
    });
    if (next.kind === "none" || next.kind === "wait") return;
    if (next.kind === "done") {
      this.opts.ledger.withdrawalFinalized(channel);
      await this.opts.reconcile(channel);
      this.opts.log(
        `buyer: channel ${channel} (${summary.purchase}) has no unspent deposit left to withdraw; its calls resume`,
      );
      this.opts.onChange?.(summary.purchase);
      return;
    }
    const wallet = createWalletClient({ account: this.opts.account, transport: http(terms.rpcUrl) });
    if (next.kind === "initiate") {
      const tx = await wallet.writeContract({
        address: BATCH_SETTLEMENT_ADDRESS,
        abi: WITHDRAW_ABI,
        functionName: "initiateWithdraw",
        args: [config, next.amount],
        chain: null,
      });
      const mined = await minedAt(client, tx);
      this.opts.ledger.withdrawalInitiated(channel, summary.purchase, {
        amount: next.amount,
        tx,
        initiatedAt: mined,
      });
      this.opts.log(
        `buyer: channel ${channel} (${summary.purchase}) unused for ${terms.idleSeconds} s: withdrawing its unspent ${next.amount} atomic units (${tx}); final after ${config.withdrawDelay} s`,
      );
      this.opts.onChange?.(summary.purchase);
      return;
    }
    const tx = await wallet.writeContract({
      address: BATCH_SETTLEMENT_ADDRESS,
      abi: WITHDRAW_ABI,
      functionName: "finalizeWithdraw",
      args: [config],
      chain: null,
    });
    await minedAt(client, tx);
    this.opts.ledger.withdrawalFinalized(channel, tx);
    this.opts.log(`buyer: withdrawal from channel ${channel} (${summary.purchase}) finalized (${tx})`);
    await this.opts.reconcile(channel);
    this.opts.onChange?.(summary.purchase);
  }
}

/** The time (seconds) of the block that mined `tx`; throws if it reverted. */
async function minedAt(client: PublicClient, tx: Hex): Promise<number> {
  const receipt = await client.waitForTransactionReceipt({ hash: tx, timeout: 120_000 });
  if (receipt.status !== "success") throw new Error(`transaction ${tx} reverted`);
  const block = await client.getBlock({ blockHash: receipt.blockHash });
  return Number(block.timestamp);
}
