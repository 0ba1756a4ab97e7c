/**
 * The buyer's durable spend ledger: an append-only JSON-lines file, fsynced before a payment is
 * signed. A payment is first *reserved*; once signed, its *authorization* is recorded before it
 * is sent; it becomes *settled* (with its transaction, when known) or is *released* only when
 * no authorization was ever sent or the chain proves it can no longer be used (never on a
 * seller's word). Until then, and after a crash, a reservation counts as spent: a restart may
 * under-spend the budget, never re-spend it. If the file itself is lost (the PV with it),
 * payments are recovered from the chain (controller/buyer/recovery.ts) as `recovered` entries
 * keyed by transaction, so nothing is counted twice.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { PaymentAuthorization } from "./authorization";

export type LedgerEvent =
  | { kind: "reserved"; id: string; purchase: string; amount: string; at: number }
  | { kind: "authorized"; id: string; authorization: PaymentAuthorization; at: number }
  /** `amount`: what was settled when it is less than reserved (x402 upto); the rest is released. */
  | { kind: "settled"; id: string; tx?: string; amount?: string; at: number }
  | { kind: "released"; id: string; at: number }
  /** A payment found on chain that the ledger did not hold (its file was lost); `at` is the block time. */
  | { kind: "recovered"; id: string; purchase: string; amount: string; tx: string; at: number };

interface Entry {
  purchase: string;
  amount: bigint;
  at: number;
  state: "reserved" | "settled" | "released";
  authorization?: PaymentAuthorization | undefined;
  tx?: string;
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
  /** Payments that settled. */
  settledCount: number;
}

const DAY_MS = 86_400_000;

export class SpendLedger {
  private readonly entries = new Map<string, Entry>();
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
      });
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

  private append(event: LedgerEvent): void {
    fs.writeSync(this.fd, `${JSON.stringify(event)}\n`);
    fs.fsyncSync(this.fd);
    this.apply(event);
  }

  reserve(id: string, purchase: string, amount: bigint, at = Date.now()): void {
    this.append({ kind: "reserved", id, purchase, amount: amount.toString(), at });
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
      else if (e.purchase === purchase && e.state !== "released")
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
      result.total += e.amount;
      if (e.at >= dayStart) result.today += e.amount;
      if (e.state === "settled") result.settledCount++;
    }
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
