import * as assert from "node:assert/strict";
import { neverReached } from "../../controller/payments/settlement";

describe("settlement: whether the facilitator was never reached", () => {
  const coded = (code: string) => Object.assign(new Error(code), { code });

  it("is true only for connection failures before any byte was sent, also as a cause", () => {
    assert.equal(neverReached(coded("ECONNREFUSED")), true);
    assert.equal(neverReached(new Error("fetch failed", { cause: coded("ENOTFOUND") })), true);
    assert.equal(
      neverReached(new Error("a", { cause: new Error("b", { cause: coded("EHOSTUNREACH") }) })),
      true,
    );
  });

  it("is false for a timeout or a connection reset: the settlement may have gone out", () => {
    assert.equal(neverReached(coded("ETIMEDOUT")), false);
    assert.equal(neverReached(new Error("fetch failed", { cause: coded("ECONNRESET") })), false);
    assert.equal(neverReached(new Error("aborted")), false);
    assert.equal(neverReached(undefined), false);
  });
});
