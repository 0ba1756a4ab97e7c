/**
 * What the facilitator knows about settlements whose caller was left without a final answer, so
 * its next /settle of the same authorization (a gateway following a pending settlement, or
 * retrying after its own timeout) is answered from the transaction instead of being verified
 * again: a used authorization no longer verifies, and a fresh check would call a payment this
 * facilitator settled "invalid". A settlement whose success reached its caller is not kept: a
 * second settle of it (another gateway replica given the same payment) must be refused, or one
 * payment would buy two responses.
 *
 * A settlement whose receipt did not arrive in time is *pending*: its transaction may still be
 * mined. Entries are kept for `ttlMs` after their last change and bounded in number.
 */
import type { Hex } from "viem";

export type SettlementState = "pending" | "settled" | "reverted";

export interface KnownSettlement {
  readonly transaction: Hex;
  readonly state: SettlementState;
  readonly payer: string | undefined;
  readonly at: number;
}

export class SubmittedSettlements {
  private readonly entries = new Map<string, KnownSettlement>();

  constructor(
    private readonly ttlMs = 60 * 60_000,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string, now = Date.now()): KnownSettlement | undefined {
    const entry = this.entries.get(key);
    if (entry && now - entry.at > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  record(key: string, transaction: Hex, state: SettlementState, payer: string | undefined, now = Date.now()) {
    this.entries.delete(key); // re-inserted last: the map's order is the age order
    this.entries.set(key, { transaction, state, payer, at: now });
    for (const [oldest, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - entry.at <= this.ttlMs) break;
      this.entries.delete(oldest);
    }
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  /** How many settlements are still waiting for their transaction's outcome. */
  pendingCount(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.state === "pending") n++;
    return n;
  }
}

/**
 * The transaction a failed settle may still complete: the facilitator's own `settlement_pending`
 * (the receipt wait failed after the broadcast), or a failure without a transaction although
 * this request broadcast one (x402's v1 path reports a failed receipt wait that way). Pure.
 */
export function pendingTransaction(
  result: { success?: boolean; errorReason?: string; transaction?: string },
  broadcast: readonly Hex[],
): Hex | undefined {
  if (result.success) return undefined;
  if (result.errorReason === "settlement_pending" && result.transaction) return result.transaction as Hex;
  if (!result.transaction && broadcast.length > 0) return broadcast.at(-1);
  return undefined;
}
