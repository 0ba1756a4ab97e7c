import { Counter, Gauge, Histogram } from "prom-client";
import { MetricsRegistry } from "../shared/metrics";

/**
 * Prometheus metrics of the self-run facilitator (its port is in-cluster only; /metrics). The
 * signer's native balance is what an operator watches: when it runs out, every settlement fails.
 */
export class FacilitatorMetrics extends MetricsRegistry {
  readonly requests = new Counter({
    name: "obol_facilitator_requests_total",
    help: "verify and settle calls by network and outcome (valid, invalid, settled, failed, error, refused: no access token) and reason",
    labelNames: ["op", "network", "outcome", "reason"],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "obol_facilitator_duration_seconds",
    help: "verify and settle latency (settle includes waiting for the receipt)",
    labelNames: ["op"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly settledAmount = new Counter({
    name: "obol_facilitator_settled_atomic_total",
    help: "Amount moved by successful settlements, in atomic units of the asset",
    labelNames: ["network", "asset"],
    registers: [this.registry],
  });
  readonly gasSpent = new Counter({
    name: "obol_facilitator_gas_spent_wei_total",
    help: "Native currency the signer paid for settlement transactions (gasUsed × effectiveGasPrice), in wei",
    labelNames: ["network"],
    registers: [this.registry],
  });
  readonly rpcErrors = new Counter({
    name: "obol_facilitator_rpc_errors_total",
    help: "Failed calls to the chain's RPC endpoint, by call",
    labelNames: ["call"],
    registers: [this.registry],
  });
  readonly pendingSettlements = new Gauge({
    name: "obol_facilitator_pending_settlements",
    help: "Settlements broadcast whose receipt did not arrive in time (answered settlement_pending), still followed",
    labelNames: ["network"],
    registers: [this.registry],
  });
  readonly pendingResolved = new Counter({
    name: "obol_facilitator_pending_settlements_resolved_total",
    help: "Pending settlements followed to their final state, by outcome (settled, reverted, unknown: still not mined when following stopped)",
    labelNames: ["network", "outcome"],
    registers: [this.registry],
  });
  readonly signerBalance = new Gauge({
    name: "obol_facilitator_signer_balance_wei",
    help: "The settlement signer's native balance (pays the gas), refreshed periodically",
    labelNames: ["network", "address"],
    registers: [this.registry],
  });
  readonly balanceUpdated = new Gauge({
    name: "obol_facilitator_signer_balance_updated_seconds",
    help: "Unix time of the last successful balance refresh",
    labelNames: ["network"],
    registers: [this.registry],
  });
}
