import * as assert from "node:assert/strict";
import { OfferLimiter, PayerLimiter } from "../../controller/gateway/limits";

describe("offer limits", () => {
  let now = 0;
  const limiter = () => new OfferLimiter(() => now);
  beforeEach(() => {
    now = 1_000;
  });

  it("admits everything when no limit is set (absent or 0)", () => {
    const l = limiter();
    for (let i = 0; i < 100; i++) {
      assert.equal(l.admit("ns/a", undefined).admitted, true);
      assert.equal(l.admit("ns/a", { rps: 0, maxInFlight: 0 }).admitted, true);
    }
  });

  it("rps: a burst of rps, then one request per 1/rps seconds, with Retry-After", () => {
    const l = limiter();
    const admitted = () => l.admit("ns/a", { rps: 5 });
    for (let i = 0; i < 5; i++) admitted();
    const refused = admitted();
    assert.ok(!refused.admitted);
    assert.equal(refused.reason, "rate_limited");
    assert.equal(refused.retryAfterSeconds, 1);
    now += 200; // one token back at 5 rps
    assert.equal(admitted().admitted, true);
    assert.equal(admitted().admitted, false);
    now += 10_000; // refills to the burst, not beyond
    assert.deepEqual(
      Array.from({ length: 7 }, () => admitted().admitted),
      [true, true, true, true, true, false, false],
    );
  });

  it("maxInFlight: refuses while the offer is at its limit; release is idempotent", () => {
    const l = limiter();
    const first = l.admit("ns/a", { maxInFlight: 2 });
    const second = l.admit("ns/a", { maxInFlight: 2 });
    assert.ok(first.admitted && second.admitted);
    const third = l.admit("ns/a", { maxInFlight: 2 });
    assert.ok(!third.admitted && third.reason === "too_many_in_flight");
    first.release();
    first.release();
    assert.equal(l.inFlight("ns/a"), 1);
    assert.equal(l.admit("ns/a", { maxInFlight: 2 }).admitted, true);
  });

  it("keeps offers apart and applies a changed limit at once", () => {
    const l = limiter();
    for (let i = 0; i < 10; i++) l.admit("ns/a", { rps: 10 });
    assert.equal(l.admit("ns/a", { rps: 10 }).admitted, false);
    assert.equal(l.admit("ns/b", { rps: 10 }).admitted, true, "another offer has its own bucket");
    now += 1_000;
    l.admit("ns/a", { rps: 2 }); // lowered: the bucket shrinks to the new burst
    assert.equal(l.admit("ns/a", { rps: 2 }).admitted, true);
    assert.equal(l.admit("ns/a", { rps: 2 }).admitted, false);
  });
});

describe("per-payer limits", () => {
  let now = 1_000;
  it("limits each paying address on its own, per offer, refilling at the rate", () => {
    const l = new PayerLimiter(() => now);
    assert.equal(l.admit("ns/a", "0xAA", 2).admitted, true);
    assert.equal(l.admit("ns/a", "0xaa", 2).admitted, true, "addresses compare case-insensitively");
    const refused = l.admit("ns/a", "0xAA", 2);
    assert.equal(refused.admitted, false);
    assert.equal(!refused.admitted && refused.retryAfterSeconds, 1);
    assert.equal(l.admit("ns/a", "0xBB", 2).admitted, true, "another payer is not starved");
    assert.equal(l.admit("ns/b", "0xAA", 2).admitted, true, "another offer has its own buckets");
    now += 500; // one token back at 2 rps
    assert.equal(l.admit("ns/a", "0xAA", 2).admitted, true);
    assert.equal(l.admit("ns/a", "0xAA", 2).admitted, false);
    assert.equal(l.admit("ns/a", "0xAA", 0).admitted, true, "0 means no limit");
  });
  it("each of N replicas allows 1/N of the rate", () => {
    const l = new PayerLimiter(() => now, 2);
    assert.equal(l.admit("ns/a", "0xAA", 4).admitted, true);
    assert.equal(l.admit("ns/a", "0xAA", 4).admitted, true);
    assert.equal(l.admit("ns/a", "0xAA", 4).admitted, false);
  });
});
