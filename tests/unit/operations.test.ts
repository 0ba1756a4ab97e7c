import * as assert from "node:assert/strict";
import { OfferLimiter } from "../../controller/gateway/limits";
import { metricNames, repositoryQueries } from "../harness/promql";

describe("operations: PromQL metric selectors", () => {
  it("finds metric names and skips functions, labels, groupings, numbers and strings", () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.95, sum by (le, op) (rate(x402_facilitator_duration_seconds_bucket{op="settle", ns=~"$namespace"}[5m])))',
      ),
      ["x402_facilitator_duration_seconds_bucket"],
    );
    assert.deepEqual(
      metricNames(
        "a_wei < 5e15 or a_wei < 86400 * on (namespace, network) group_left () sum by (network) (rate(b_total[6h])) / 1e18",
      ),
      ["a_wei", "b_total"],
    );
    assert.deepEqual(metricNames('time() - up{job="x"} > 900 unless bool c offset 5m'), ["up", "c"]);
    assert.deepEqual(metricNames("1 - rem / lim < 0.1"), ["rem", "lim"]);
  });

  it("every dashboard query and alert rule selects only this stack's metrics", () => {
    const queries = repositoryQueries();
    assert.ok(queries.length >= 15, `${queries.length} queries`);
    for (const q of queries) {
      const names = metricNames(q.expr);
      assert.ok(names.length > 0, `${q.where} selects no metric: ${q.expr}`);
      for (const n of names) assert.match(n, /^(x402|obol)_/, `${q.where}: ${n}`);
    }
    // The list: revenue, paid calls, failures, latency, budget burn, facilitator gas.
    const all = queries.flatMap((q) => metricNames(q.expr));
    for (const needed of [
      "x402_received_atomic_total",
      "x402_requests_total",
      "x402_payments_failed_total",
      "x402_request_duration_seconds_bucket",
      "obol_buyer_budget_remaining_atomic",
      "obol_facilitator_signer_balance_wei",
      "obol_facilitator_gas_spent_wei_total",
    ])
      assert.ok(all.includes(needed), needed);
    const alerts = queries.filter((q) => q.where.startsWith("alert ")).map((q) => q.where.split(" ")[1]);
    for (const a of [
      "ObolSettleFailures",
      "ObolFacilitatorUnreachable",
      "ObolSignerBalanceLow",
      "ObolBudgetNearlySpent",
    ])
      assert.ok(alerts.includes(a), a);
  });
});

describe("operations: gateway replicas", () => {
  it("each of N replicas enforces 1/N of an offer's limits, so together they never exceed them", () => {
    let now = 0;
    const single = new OfferLimiter(() => now, 1);
    const half = new OfferLimiter(() => now, 2);
    const admitted = (l: OfferLimiter, n: number, limits: { rps?: number; maxInFlight?: number }) =>
      Array.from({ length: n }, () => l.admit("ns/o", limits)).filter((a) => a.admitted).length;
    assert.equal(admitted(single, 10, { rps: 4 }), 4);
    assert.equal(admitted(half, 10, { rps: 4 }), 2);
    now += 1000;
    assert.equal(admitted(half, 10, { rps: 4 }), 2, "refills at rps/N");
    const inflight = new OfferLimiter(() => now, 2);
    assert.equal(admitted(inflight, 10, { maxInFlight: 5 }), 2, "floor(5/2)");
    const tiny = new OfferLimiter(() => now, 3);
    assert.equal(admitted(tiny, 10, { maxInFlight: 1 }), 1, "never 0 (which would mean unlimited)");
  });
});
