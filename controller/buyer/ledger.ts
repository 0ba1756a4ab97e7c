/**
 * The buyer's durable spend ledger: an append-only JSON-lines file, fsynced before a payment is
 * signed. A payment is first *reserved*; once signed, its *authorization* is recorded before it
 * is sent; it becomes *settled* (with its transaction, when known) or is *released* only when
 * no authorization was ever sent or the chain proves it can no longer be used (never on a
 * seller's word). Until then, and after a crash, a reservation counts as spent: a restart may
 * under-spend the budget, never re-spend it. If the file itself is lost (the PV with it),
 * payments are recovered from the chain (controller/buyer/recovery.ts) as `recovered` entries
 * keyed by transaction, so nothing is counted twice.
 *
 * Payment channels (x402 batch-settlement) are budgeted as money out of the wallet: a deposit is
 * a payment like any other (reserved before it is signed, `channel` naming the channel it funds);
 * the vouchers that then pay each call draw on it and add nothing to the spend; a refund of the
 * unused deposit comes back (`refunded`, taken off the channel's newest deposits first). Each
 * channel's client state (the x402 library's record: charged and deposited amounts) is kept
 * here too (`channel`), and every voucher is recorded (`voucher`) before it leaves the process,
 * so a restarted buyer continues its channels from the highest amount it signed. A channel's
 * configuration is recorded with its first deposit (`channelConfig`), so that the buyer can
 * withdraw the unused deposit itself if the seller stops refunding (`withdrawal` when initiated,
 * `withdrawn` when final; the money back is then `refunded` like a seller's refund).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { PaymentAuthorization } from "./authorization";

/** The x402 batch-settlement client's record of one channel (decimal strings, atomic units). */
export interface ChannelContext {
  chargedCumulativeAmount?: string;
  balance?: string;
  totalClaimed?: string;
  signedMaxClaimable?: string;
  signature?: `0x${string}`;
}

/** A channel's on-chain configuration (x402 batch-settlement `ChannelConfig`), as its deposit signed it. */
export interface ChannelConfigRecord {
  payer: `0x${string}`;
  payerAuthorizer: `0x${string}`;
  receiver: `0x${string}`;
  receiverAuthorizer: `0x${string}`;
  token: `0x${string}`;
  /** Seconds between initiating and finalizing a withdrawal. */
  withdrawDelay: number;
  salt: `0x${string}`;
}

/** A withdrawal the buyer initiated and has not finalized. */
export interface PendingWithdrawal {
  readonly amount: bigint;
  readonly tx: string;
  /** The initiating block's time (seconds): finalizable from `initiatedAt + withdrawDelay`. */
  readonly initiatedAt: number;
}

export type LedgerEvent =
  /** `channel`: the payment is a deposit into that channel (x402 batch-settlement). */
  | { kind: "reserved"; id: string; purchase: string; amount: string; at: number; channel?: string }
  | { kind: "authorized"; id: string; authorization: PaymentAuthorization; at: number }
  /** `amount`: what was settled when it is less than reserved (x402 upto); the rest is released. */
  | { kind: "settled"; id: string; tx?: string; amount?: string; at: number }
  | { kind: "released"; id: string; at: number }
  /** A payment found on chain that the ledger did not hold (its file was lost); `at` is the block time. */
  | { kind: "recovered"; id: string; purchase: string; amount: string; tx: string; at: number }
  /** A channel's client state after a change (null: forgotten). */
  | { kind: "channel"; channel: string; context: ChannelContext | null; at: number }
  /** A voucher for `cumulative` in total was signed for `purchase`, before it was sent. */
  | { kind: "voucher"; channel: string; purchase: string; cumulative: string; at: number }
  /** `amount` of the channel's deposits came back to the wallet (seen on chain). */
  | { kind: "refunded"; channel: string; purchase: string; amount: string; at: number }
  /** The channel's configuration, from the first deposit signed into it (a withdrawal needs it). */
  | { kind: "channelConfig"; channel: string; purchase: string; config: ChannelConfigRecord; at: number }
  /** The buyer initiated a withdrawal of `amount` (transaction `tx`, mined at `initiatedAt`, seconds). */
  | {
      kind: "withdrawal";
      channel: string;
      purchase: string;
      amount: string;
      tx: string;
      initiatedAt: number;
      at: number;
    }
  /**
   * The pending withdrawal is over: finalized by `tx` (the money shows as `refunded` once read on
   * chain), or without one when nothing unspent was left to take.
   */
  | { kind: "withdrawn"; channel: string; tx?: string; at: number };

interface Entry {
  purchase: string;
  amount: bigint;
  at: number;
  state: "reserved" | "settled" | "released";
  authorization?: PaymentAuthorization | undefined;
  tx?: string;
  /** The channel a deposit funds. */
  channel?: string;
  /** The part of a deposit refunded to the wallet. */
  refunded: bigint;
}

interface ChannelEntry {
  purchase?: string;
  context?: ChannelContext;
  /** The highest cumulative amount signed. */
  signed: bigint;
  /** Calls charged by voucher (each raise of the charged amount). */
  calls: number;
  /** When a voucher or a deposit was last signed for it (ms). */
  lastUsedAt: number;
  config?: ChannelConfigRecord;
  withdrawal?: PendingWithdrawal;
}

/** A purchase's channel, as the ledger counts it (atomic units). */
export interface ChannelSummary {
  readonly channel: string;
  readonly purchase: string;
  /** Deposits that settled on chain. */
  readonly deposited: bigint;
  /** Deposits signed and not yet known to have settled or not. */
  readonly pending: bigint;
  readonly refunded: bigint;
  /** What the seller charged (the cumulative amount of the last voucher it accepted). */
  readonly charged: bigint;
  /** The highest cumulative amount signed. */
  readonly signed: bigint;
  /** When a voucher or a deposit was last signed for it (ms; 0: never). */
  readonly lastUsedAt: number;
  /** Its configuration, when the ledger saw its deposit signed (needed to withdraw). */
  readonly config?: ChannelConfigRecord;
  readonly withdrawal?: PendingWithdrawal;
}

/** A reservation without an outcome yet. */
export interface Unconfirmed {
  readonly id: string;
  readonly purchase: string;
  readonly amount: bigint;
  /** Absent when the process stopped between reserving and signing. */
  readonly authorization: PaymentAuthorization | undefined;
}

export interface Spend {
  /** Atomic units counted against the budget (settled + unresolved reservations). */
  total: bigint;
  /** The same, since 00:00 UTC of `now`. */
  today: bigint;
  /** Paid requests: payments that settled, and calls charged by channel voucher. */
  settledCount: number;
}

const DAY_MS = 86_400_000;

export class SpendLedger {
  private readonly entries = new Map<string, Entry>();
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly fd: number;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, "utf8");
      // A crash mid-write leaves a torn last line without its newline: drop it (the event it
      // held was never acted on), so later appends start on a fresh line.
      const complete = text.slice(0, text.lastIndexOf("\n") + 1);
      if (complete.length !== text.length) fs.truncateSync(file, Buffer.byteLength(complete));
      complete.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        try {
          this.apply(JSON.parse(line) as LedgerEvent);
        } catch {
          throw new Error(
            `spend ledger ${file} is corrupt at line ${i + 1}; refusing to guess what was spent`,
          );
        }
      });
    }
    this.fd = fs.openSync(file, "a", 0o600);
  }

  private apply(event: LedgerEvent): void {
    if (event.kind === "reserved" || event.kind === "recovered") {
      this.entries.set(event.id, {
        purchase: event.purchase,
        amount: BigInt(event.amount),
        at: event.at,
        // A recovered payment is one the chain shows settled.
        state: event.kind === "reserved" ? "reserved" : "settled",
        ...(event.kind === "recovered" ? { tx: event.tx.toLowerCase() } : {}),
        ...(event.kind === "reserved" && event.channel ? { channel: event.channel.toLowerCase() } : {}),
        refunded: 0n,
      });
      if (event.kind === "reserved" && event.channel) {
        const ch = this.channel(event.channel);
        ch.purchase ??= event.purchase;
        if (event.at > ch.lastUsedAt) ch.lastUsedAt = event.at;
      }
      return;
    }
    if (event.kind === "channelConfig") {
      const ch = this.channel(event.channel);
      ch.purchase ??= event.purchase;
      ch.config ??= event.config;
      return;
    }
    if (event.kind === "withdrawal") {
      const ch = this.channel(event.channel);
      ch.purchase ??= event.purchase;
      ch.withdrawal = { amount: BigInt(event.amount), tx: event.tx, initiatedAt: event.initiatedAt };
      return;
    }
    if (event.kind === "withdrawn") {
      delete this.channel(event.channel).withdrawal;
      return;
    }
    if (event.kind === "channel") {
      const ch = this.channel(event.channel);
      const before = BigInt(ch.context?.chargedCumulativeAmount ?? "0");
      const after = BigInt(event.context?.chargedCumulativeAmount ?? "0");
      if (event.context && after > before) ch.calls++;
      if (event.context) ch.context = event.context;
      else delete ch.context;
      return;
    }
    if (event.kind === "voucher") {
      const ch = this.channel(event.channel);
      ch.purchase = event.purchase;
      const cumulative = BigInt(event.cumulative);
      if (cumulative > ch.signed) ch.signed = cumulative;
      if (event.at > ch.lastUsedAt) ch.lastUsedAt = event.at;
      return;
    }
    if (event.kind === "refunded") {
      this.channel(event.channel).purchase ??= event.purchase;
      // Taken off the channel's newest deposits first: the money returned is the money unused.
      let left = BigInt(event.amount);
      const deposits = [...this.entries.values()]
        .filter((e) => e.channel === event.channel.toLowerCase() && e.state !== "released")
        .sort((a, b) => b.at - a.at);
      for (const e of deposits) {
        if (left <= 0n) break;
        const part = e.amount - e.refunded < left ? e.amount - e.refunded : left;
        e.refunded += part;
        left -= part;
      }
      return;
    }
    const entry = this.entries.get(event.id);
    if (!entry) return;
    if (event.kind === "authorized") entry.authorization = event.authorization;
    else {
      entry.state = event.kind;
      if (event.kind === "settled" && event.tx) entry.tx = event.tx.toLowerCase();
      if (event.kind === "settled" && event.amount !== undefined) {
        const settled = BigInt(event.amount);
        // Never more than was reserved: the reservation was the signed maximum.
        if (settled < entry.amount) entry.amount = settled;
      }
    }
  }

  private channel(id: string): ChannelEntry {
    const key = id.toLowerCase();
    let ch = this.channels.get(key);
    if (!ch) {
      ch = { signed: 0n, calls: 0, lastUsedAt: 0 };
      this.channels.set(key, ch);
    }
    return ch;
  }

  private append(event: LedgerEvent): void {
    fs.writeSync(this.fd, `${JSON.stringify(event)}\n`);
    fs.fsyncSync(this.fd);
    this.apply(event);
  }

  /** `channel`: the payment is a deposit into that channel. */
  reserve(id: string, purchase: string, amount: bigint, at = Date.now(), channel?: string): void {
    this.append({
      kind: "reserved",
      id,
      purchase,
      amount: amount.toString(),
      at,
      ...(channel ? { channel: channel.toLowerCase() } : {}),
    });
  }

  /** The channel's client state (the x402 batch-settlement client's record). */
  channelContext(channel: string): ChannelContext | undefined {
    return this.channels.get(channel.toLowerCase())?.context;
  }

  setChannelContext(channel: string, context: ChannelContext | null, at = Date.now()): void {
    this.append({ kind: "channel", channel: channel.toLowerCase(), context, at });
  }

  /** Records a voucher before it is sent (a restarted buyer knows what it signed). */
  voucherSigned(channel: string, purchase: string, cumulative: bigint, at = Date.now()): void {
    this.append({
      kind: "voucher",
      channel: channel.toLowerCase(),
      purchase,
      cumulative: cumulative.toString(),
      at,
    });
  }

  /** Records `amount` of the channel's deposits as back in the wallet. */
  refunded(channel: string, purchase: string, amount: bigint, at = Date.now()): void {
    if (amount <= 0n) return;
    this.append({
      kind: "refunded",
      channel: channel.toLowerCase(),
      purchase,
      amount: amount.toString(),
      at,
    });
  }

  /** Records a channel's configuration (once; later records of the same channel are ignored). */
  channelConfigured(channel: string, purchase: string, config: ChannelConfigRecord, at = Date.now()): void {
    if (this.channels.get(channel.toLowerCase())?.config) return;
    this.append({ kind: "channelConfig", channel: channel.toLowerCase(), purchase, config, at });
  }

  /** Records a withdrawal the buyer initiated on chain. */
  withdrawalInitiated(
    channel: string,
    purchase: string,
    withdrawal: PendingWithdrawal,
    at = Date.now(),
  ): void {
    this.append({
      kind: "withdrawal",
      channel: channel.toLowerCase(),
      purchase,
      amount: withdrawal.amount.toString(),
      tx: withdrawal.tx,
      initiatedAt: withdrawal.initiatedAt,
      at,
    });
  }

  /** Records the channel's pending withdrawal as over: finalized by `tx`, or with nothing left to take. */
  withdrawalFinalized(channel: string, tx?: string, at = Date.now()): void {
    this.append({ kind: "withdrawn", channel: channel.toLowerCase(), ...(tx ? { tx } : {}), at });
  }

  /** A channel of the purchase with a withdrawal pending and its configuration, if any (cheap: no deposit sums). */
  pendingWithdrawal(
    purchase: string,
  ): { channel: string; withdrawal: PendingWithdrawal; config: ChannelConfigRecord } | undefined {
    for (const [channel, ch] of this.channels)
      if (ch.purchase === purchase && ch.withdrawal && ch.config)
        return { channel, withdrawal: ch.withdrawal, config: ch.config };
    return undefined;
  }

  /** The channels the ledger knows, of one purchase or all. */
  channelSummaries(purchase?: string): ChannelSummary[] {
    const out: ChannelSummary[] = [];
    for (const [channel, ch] of this.channels) {
      if (!ch.purchase || (purchase !== undefined && ch.purchase !== purchase)) continue;
      let deposited = 0n;
      let pending = 0n;
      let refunded = 0n;
      for (const e of this.entries.values()) {
        if (e.channel !== channel || e.state === "released") continue;
        if (e.state === "settled") deposited += e.amount;
        else pending += e.amount;
        refunded += e.refunded;
      }
      out.push({
        channel,
        purchase: ch.purchase,
        deposited,
        pending,
        refunded,
        charged: BigInt(ch.context?.chargedCumulativeAmount ?? "0"),
        signed: ch.signed,
        lastUsedAt: ch.lastUsedAt,
        ...(ch.config ? { config: ch.config } : {}),
        ...(ch.withdrawal ? { withdrawal: ch.withdrawal } : {}),
      });
    }
    return out;
  }

  /** The signed authorization of a reserved payment, recorded before it leaves the process. */
  authorize(id: string, authorization: PaymentAuthorization, at = Date.now()): void {
    this.append({ kind: "authorized", id, authorization, at });
  }

  /**
   * `tx` is absent when only the chain's authorization state says the payment was used.
   * `amount`: the settled amount of an upto payment (below the reserved maximum); the remainder
   * no longer counts against the budget.
   */
  settle(id: string, tx?: string, at = Date.now(), amount?: bigint): void {
    this.append({
      kind: "settled",
      id,
      ...(tx ? { tx } : {}),
      ...(amount !== undefined ? { amount: amount.toString() } : {}),
      at,
    });
  }

  /** Reservations still counted as spent without an outcome. */
  unconfirmed(): Unconfirmed[] {
    const out: Unconfirmed[] = [];
    for (const [id, e] of this.entries) {
      if (e.state === "reserved")
        out.push({ id, purchase: e.purchase, amount: e.amount, authorization: e.authorization });
    }
    return out;
  }

  release(id: string, at = Date.now()): void {
    this.append({ kind: "released", id, at });
  }

  /**
   * Records on-chain payments of `purchase` the ledger does not know yet; returns how many were
   * new. A payment is matched by transaction hash; one the ledger already counts without a hash
   * (reserved and unconfirmed, or settled from the chain's authorization state) is matched by its
   * amount, so a payment is never counted twice. An x402 `upto` payment settles less than the
   * maximum reserved for it: a chain payment with no equal entry is matched to the smallest
   * Permit2 entry above it, which is then settled at the chain's amount.
   */
  recover(purchase: string, payments: readonly { tx: string; amount: bigint; at: number }[]): number {
    const known = new Set<string>();
    const countedWithoutTx: { id: string; amount: bigint; permit2: boolean }[] = [];
    for (const [id, e] of this.entries) {
      if (e.tx) known.add(e.tx);
      // A channel deposit is a transfer to the deposit collector, never one of these.
      else if (e.purchase === purchase && e.state !== "released" && !e.channel)
        countedWithoutTx.push({ id, amount: e.amount, permit2: e.authorization?.kind === "permit2" });
    }
    let added = 0;
    for (const p of payments) {
      const tx = p.tx.toLowerCase();
      if (known.has(tx)) continue;
      known.add(tx);
      const same = countedWithoutTx.findIndex((e) => e.amount === p.amount);
      if (same >= 0) {
        countedWithoutTx.splice(same, 1);
        continue;
      }
      const upto = smallestAbove(countedWithoutTx, p.amount);
      if (upto >= 0) {
        const [entry] = countedWithoutTx.splice(upto, 1);
        if (entry) this.settle(entry.id, tx, Date.now(), p.amount);
        continue;
      }
      this.append({
        kind: "recovered",
        id: `chain:${tx}`,
        purchase,
        amount: p.amount.toString(),
        tx,
        at: p.at,
      });
      added++;
    }
    return added;
  }

  spend(purchase: string, now = Date.now()): Spend {
    const dayStart = now - (now % DAY_MS);
    const result: Spend = { total: 0n, today: 0n, settledCount: 0 };
    for (const e of this.entries.values()) {
      if (e.purchase !== purchase || e.state === "released") continue;
      const counted = e.amount - e.refunded;
      result.total += counted;
      if (e.at >= dayStart) result.today += counted;
      // A deposit pays no call by itself: its calls are counted as the seller charges them.
      if (e.state === "settled" && !e.channel) result.settledCount++;
    }
    for (const ch of this.channels.values()) if (ch.purchase === purchase) result.settledCount += ch.calls;
    return result;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** The index of the Permit2 entry with the smallest amount above `amount`, or -1. */
function smallestAbove(entries: readonly { amount: bigint; permit2: boolean }[], amount: bigint): number {
  let best = -1;
  entries.forEach((e, i) => {
    if (e.permit2 && e.amount > amount && (best < 0 || e.amount < (entries[best]?.amount ?? 0n))) best = i;
  });
  return best;
}
