import * as assert from "node:assert/strict";
import { CoalescedRuns } from "../../controller/shared/coalesced";

/** A promise the test settles by hand. */
function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("CoalescedRuns: one run per key at a time, the last request always followed by a run", () => {
  it("never overlaps runs of a key, and the last run reads the latest value", async () => {
    let value = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const written: number[] = [];
    const gates: ReturnType<typeof deferred>[] = [];
    const runs = new CoalescedRuns<string>(async () => {
      const seen = value; // read when the run starts, as a status writer computes its status
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      written.push(seen);
      inFlight--;
    });

    value = 1;
    const first = runs.request("a");
    value = 2;
    const second = runs.request("a");
    value = 3;
    const third = runs.request("a");
    await tick();
    assert.equal(gates.length, 1, "requests during a run wait for it");
    gates[0]?.resolve();
    await tick();
    assert.equal(gates.length, 2, "they coalesce into exactly one more run");
    gates[1]?.resolve();
    await Promise.all([first, second, third]);
    assert.deepEqual(written, [1, 3], "the last write carries the last value");
    assert.equal(maxInFlight, 1);
  });

  it("runs different keys independently", async () => {
    const started: string[] = [];
    const gate = deferred();
    const runs = new CoalescedRuns<string>(async (key) => {
      started.push(key);
      await gate.promise;
    });
    const done = Promise.all([runs.request("a"), runs.request("b")]);
    await tick();
    assert.deepEqual(started, ["a", "b"]);
    gate.resolve();
    await done;
  });

  it("reports a failed run to its waiters and runs again on the next request", async () => {
    let calls = 0;
    const runs = new CoalescedRuns<string>(async () => {
      calls++;
      if (calls === 1) throw new Error("API server unavailable");
    });
    await assert.rejects(runs.request("a"), /API server unavailable/);
    await runs.request("a");
    assert.equal(calls, 2);
  });

  it("recovers from a run that throws before its first await", async () => {
    let calls = 0;
    const runs = new CoalescedRuns<string>((() => {
      calls++;
      if (calls === 1) throw new Error("synchronous failure");
      return Promise.resolve();
    }) as (key: string) => Promise<void>);
    await assert.rejects(runs.request("a"), /synchronous failure/);
    await runs.request("a");
    assert.equal(calls, 2);
  });
});
