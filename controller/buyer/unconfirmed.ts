/**
 * Follows payments the buyer signed and sent but has no receipt for, to their final state on
 * chain: used → settled (spent for good), unused past its validity → released (it can never be
 * settled), otherwise kept as spent and asked again later. A purchase without an RPC URL cannot
 * ask the chain, so its unconfirmed payments stay counted as spent.
 */
import { CoalescedRuns } from "../shared/coalesced";
import { errorMessage } from "../shared/log";
import { repeatEvery } from "../shared/repeat";
import { type AuthorizationState, authorizationState, type PaymentAuthorization } from "./authorization";
import type { SpendLedger, Unconfirmed } from "./ledger";
import { RpcClients } from "./rpcClients";

export interface UnconfirmedOptions {
  ledger: SpendLedger;
  /** The RPC URL of a purchase (by PurchaseRequest name), if it names one. */
  rpcUrlFor(purchase: string): string | undefined;
  log(message: string): void;
  /** Called after a payment of `purchase` was resolved, to publish spend counters. */
  onResolved?(purchase: string): void;
  /** Reads the chain; replaceable for unit tests. */
  stateOf?(rpcUrl: string, auth: PaymentAuthorization): Promise<AuthorizationState>;
}

/** What the ledger does with an unconfirmed payment, given what the chain says. Pure. */
export function outcomeOf(state: AuthorizationState): "settled" | "released" | "unconfirmed" {
  return state === "used" ? "settled" : state === "expired_unused" ? "released" : "unconfirmed";
}

export class UnconfirmedPayments {
  private readonly clients = new RpcClients();
  private readonly passes = new CoalescedRuns<"all">(async () => {
    for (const entry of this.opts.ledger.unconfirmed()) await this.resolveOne(entry);
  });
  private stopTimer: (() => void) | undefined;

  constructor(private readonly opts: UnconfirmedOptions) {}

  /** Asks the chain about every unconfirmed payment; concurrent calls share (and repeat) one pass. */
  resolve(): Promise<void> {
    return this.passes.request("all");
  }

  /** Resolves now and then every `intervalMs`. */
  start(intervalMs: number): void {
    this.stopTimer = repeatEvery(intervalMs, () =>
      this.resolve().catch((err) =>
        this.opts.log(`buyer: resolving unconfirmed payments failed: ${errorMessage(err)}`),
      ),
    );
  }

  stop(): void {
    this.stopTimer?.();
  }

  private async resolveOne(entry: Unconfirmed): Promise<void> {
    const { authorization } = entry;
    if (!authorization) return; // never signed, or the process stopped before recording it: spent
    const rpcUrl = this.opts.rpcUrlFor(entry.purchase);
    if (!rpcUrl) return;
    let state: AuthorizationState;
    try {
      state = await (this.opts.stateOf ?? ((url, auth) => authorizationState(this.clients.get(url), auth)))(
        rpcUrl,
        authorization,
      );
    } catch (err) {
      this.opts.log(
        `buyer: cannot read payment ${entry.id} of ${entry.purchase} on ${authorization.network}: ${errorMessage(err)}; still counted as spent`,
      );
      return;
    }
    const outcome = outcomeOf(state);
    if (outcome === "unconfirmed") return;
    if (outcome === "settled") this.opts.ledger.settle(entry.id);
    else this.opts.ledger.release(entry.id);
    this.opts.log(
      `buyer: payment ${entry.id} of ${entry.purchase} ${outcome === "settled" ? "was settled on chain without a receipt; counted as spent" : "expired unused on chain; released"}`,
    );
    this.opts.onResolved?.(entry.purchase);
  }
}
