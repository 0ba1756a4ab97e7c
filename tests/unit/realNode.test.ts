import * as assert from "node:assert/strict";
import { splitRule } from "../harness/nodeHost";
import { normalizeRef } from "../harness/realCluster";

describe("real node harness helpers", () => {
  it("names images the way containerd lists them", () => {
    assert.equal(normalizeRef("obol-test/pause:3.10-abc"), "docker.io/obol-test/pause:3.10-abc");
    assert.equal(normalizeRef("node:22.23.3-bookworm-slim"), "docker.io/library/node:22.23.3-bookworm-slim");
    assert.equal(
      normalizeRef("gcr.io/distroless/nodejs22-debian12:nonroot"),
      "gcr.io/distroless/nodejs22-debian12:nonroot",
    );
    assert.equal(normalizeRef("localhost:5000/x"), "localhost:5000/x:latest");
    assert.equal(normalizeRef("busybox"), "docker.io/library/busybox:latest");
  });

  it("replays `iptables -S` rules as arguments, keeping quoted comments whole", () => {
    assert.deepEqual(
      splitRule('FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
      ["FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"],
    );
    assert.deepEqual(splitRule("OUTPUT -d 10.96.0.0/16 -j REJECT"), [
      "OUTPUT",
      "-d",
      "10.96.0.0/16",
      "-j",
      "REJECT",
    ]);
  });
});
