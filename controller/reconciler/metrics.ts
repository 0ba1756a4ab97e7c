import { Counter, Histogram } from "prom-client";
import { MetricsRegistry } from "../shared/metrics";

/** Prometheus metrics of the controller, served on its health port at /metrics. */
export class ControllerMetrics extends MetricsRegistry {
  readonly reconciles = new Counter({
    name: "obol_controller_reconcile_total",
    help: "Reconciles by kind and result (success, error)",
    labelNames: ["kind", "result"],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "obol_controller_reconcile_errors_total",
    help: "Reconciles that failed and were requeued with backoff, by kind",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "obol_controller_reconcile_duration_seconds",
    help: "Time one reconcile took, by kind (includes upstream and gateway probes)",
    labelNames: ["kind"],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  /** Times `fn` as one reconcile of `kind`, counting its result. */
  async observe<T>(kind: string, fn: () => Promise<T>): Promise<T> {
    const end = this.duration.startTimer({ kind });
    try {
      const result = await fn();
      this.reconciles.inc({ kind, result: "success" });
      return result;
    } catch (err) {
      this.reconciles.inc({ kind, result: "error" });
      this.errors.inc({ kind });
      throw err;
    } finally {
      end();
    }
  }
}
