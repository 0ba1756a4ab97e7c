import { Counter, Gauge, Histogram } from "prom-client";
import { MetricsRegistry } from "../shared/metrics";

/** Prometheus metrics of the payment path, served on the gateway's internal port (/metrics). */
export class PaymentMetrics extends MetricsRegistry {
  readonly requests = new Counter({
    name: "x402_requests_total",
    help: "Paid-route requests by offer and outcome (payment_required, rejected, served, upstream_failed, settle_failed, settle_pending, facilitator_unavailable)",
    labelNames: ["offer", "outcome"],
    registers: [this.registry],
  });
  readonly verified = new Counter({
    name: "x402_payments_verified_total",
    help: "Payments the facilitator verified",
    labelNames: ["offer", "network"],
    registers: [this.registry],
  });
  readonly settled = new Counter({
    name: "x402_payments_settled_total",
    help: "Payments settled on chain after a successful upstream response",
    labelNames: ["offer", "network"],
    registers: [this.registry],
  });
  readonly received = new Counter({
    name: "x402_received_atomic_total",
    help: "Amount received through settled payments, in atomic units of the asset",
    labelNames: ["offer", "network", "asset"],
    registers: [this.registry],
  });
  readonly failed = new Counter({
    name: "x402_payments_failed_total",
    help: "Payments refused or not settled, by reason",
    labelNames: ["offer", "reason"],
    registers: [this.registry],
  });
  readonly voucherChecks = new Counter({
    name: "x402_channel_vouchers_checked_total",
    help: "Channel vouchers by the check that decided them: native (accepted by libsecp256k1 at the gateway) or library (@x402/evm: refusals, stale channel state, unusual forms)",
    labelNames: ["path"],
    registers: [this.registry],
  });
  readonly signaturesRecovered = new Counter({
    name: "x402_channel_signatures_recovered_total",
    help: "Channel voucher signers recovered natively, by where: worker (the signature thread) or loop (the event loop, when the worker is unavailable)",
    labelNames: ["where"],
    registers: [this.registry],
  });
  readonly signatureBatches = new Counter({
    name: "x402_channel_signature_batches_total",
    help: "Messages to the signature thread (each carries the recoveries asked for in one turn of the event loop)",
    registers: [this.registry],
  });
  readonly pending = new Gauge({
    name: "x402_pending_settlements",
    help: "Settlements whose outcome is not known yet (settlement_pending), followed until final",
    labelNames: ["offer"],
    registers: [this.registry],
  });
  readonly pendingResolved = new Counter({
    name: "x402_pending_settlements_resolved_total",
    help: "Pending settlements followed to their final state, by outcome (settled, failed, unresolved)",
    labelNames: ["offer", "outcome"],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "x402_request_duration_seconds",
    help: "Time from request to response head for paid routes, by outcome",
    labelNames: ["outcome"],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly facilitatorDuration = new Histogram({
    name: "x402_facilitator_duration_seconds",
    help: "Facilitator call latency by operation",
    labelNames: ["op"],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
}
