import { Counter, Gauge, Histogram } from "prom-client";
import { chainInfo } from "../../api/chains";
import { toAtomic } from "../../api/money";
import { MetricsRegistry } from "../shared/metrics";
import type { SpendLedger } from "./ledger";
import type { Purchase } from "./server";

/**
 * Prometheus metrics of the buyer (served on its own port at /metrics; the buyer's Service is
 * in-cluster only). Amounts are atomic units of the purchase's asset, labelled with network and
 * asset, so sums never mix tokens of different decimals.
 */
export class BuyerMetrics extends MetricsRegistry {
  readonly payments = new Counter({
    name: "obol_buyer_payments_total",
    help: "Buyer requests by purchase and outcome (paid, unconfirmed, not_charged, refused, seller_unreachable) and reason",
    labelNames: ["purchase", "outcome", "reason"],
    registers: [this.registry],
  });
  readonly paid = new Counter({
    name: "obol_buyer_paid_atomic_total",
    help: "Amount paid to sellers (settled), in atomic units of the asset",
    labelNames: ["purchase", "network", "asset"],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "obol_buyer_request_duration_seconds",
    help: "Time from the agent's request to the seller's response head, by outcome",
    labelNames: ["outcome"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  /**
   * `purchases` lists the current PurchaseRequests: their remaining budget is computed from the
   * durable ledger at scrape time, so it is right after a restart without any replay.
   */
  constructor(ledger: SpendLedger, purchases: () => readonly Purchase[]) {
    super();
    const labelsOf = (p: Purchase, window: string) => ({
      purchase: p.name,
      network: p.spec.payment.network,
      // Without an asset the purchase pays in the chain's USDC.
      asset:
        p.spec.payment.asset ?? chainInfo(p.spec.payment.network as `eip155:${number}`)?.usdc?.address ?? "",
      window,
    });
    const limits = (p: Purchase) =>
      [
        ["total", p.spec.budget.maxTotal],
        ["day", p.spec.budget.maxPerDay],
      ] as const;
    new Gauge({
      name: "obol_buyer_budget_limit_atomic",
      help: "A purchase's budget (budget.maxTotal as window=total, budget.maxPerDay as window=day), in atomic units",
      labelNames: ["purchase", "network", "asset", "window"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of purchases())
          for (const [window, limit] of limits(p))
            if (limit !== undefined)
              this.set(labelsOf(p, window), Number(toAtomic(limit, p.spec.payment.decimals)));
      },
    });
    new Gauge({
      name: "obol_buyer_budget_remaining_atomic",
      help: "What a purchase may still spend in its window (total or today), in atomic units",
      labelNames: ["purchase", "network", "asset", "window"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const p of purchases()) {
          const spend = ledger.spend(p.name);
          for (const [window, limit] of limits(p)) {
            if (limit === undefined) continue;
            const used = window === "total" ? spend.total : spend.today;
            const left = toAtomic(limit, p.spec.payment.decimals) - used;
            this.set(labelsOf(p, window), Number(left > 0n ? left : 0n));
          }
        }
      },
    });
  }
}
