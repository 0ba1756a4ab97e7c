import * as assert from "node:assert/strict";
import { decideMonitoring, messageWithCause } from "../../program/monitoring";

describe("monitoring.serviceMonitors decision (program/monitoring.ts)", () => {
  const missing = ["servicemonitors.monitoring.coreos.com"];

  it("takes true and false as said, and auto from whether the cluster serves the CRDs", () => {
    assert.equal(decideMonitoring(false, missing), false);
    assert.equal(decideMonitoring(false, []), false);
    assert.equal(decideMonitoring("auto", []), true);
    assert.equal(decideMonitoring("auto", missing), false);
    assert.equal(decideMonitoring(true, []), true);
  });

  it("stops on true without the CRDs, naming what is missing and the fix", () => {
    assert.throws(
      () => decideMonitoring(true, missing),
      /does not serve servicemonitors\.monitoring\.coreos\.com: install the Prometheus Operator .* set monitoring\.serviceMonitors to auto or false/,
    );
  });

  it("words an error with its cause, and any thrown value without throwing", () => {
    const err = new Error("monitoring.serviceMonitors: cannot ask the cluster", {
      cause: new Error("connect ECONNREFUSED 127.0.0.1:6443"),
    });
    assert.equal(
      messageWithCause(err),
      "monitoring.serviceMonitors: cannot ask the cluster: connect ECONNREFUSED 127.0.0.1:6443",
    );
    assert.equal(messageWithCause(new Error("plain")), "plain");
    assert.equal(messageWithCause("text"), "text");
    assert.equal(messageWithCause(Object.create(null)), "an unprintable error");
  });
});
